"""Cross-checks against MONAI, segmentation-models-pytorch and torchmetrics.

Every peer is configured to compute the same quantity (smoothing set to ~0, the same eps in
the denominator) on random inputs where every class is present, so their empty-class rules
(which differ from ours on purpose, see docs/dice.md) do not enter.
"""

from __future__ import annotations

import pytest
import torch

from segwise.losses import functional as LF

monai_losses = pytest.importorskip("monai.losses")
smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")
tm_seg = pytest.importorskip("torchmetrics.functional.segmentation")

EPS = 1e-5
N, C, H, W = 2, 4, 6, 6


def _index_target(c: int = C) -> torch.Tensor:
    t = torch.randint(0, c, (N, H, W))
    t[:, 0, :c] = torch.arange(c)  # every class present in every image
    return t


def _close(a, b, tol=1e-6):
    assert float(a) == pytest.approx(float(b), rel=tol, abs=tol)


@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("jaccard", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
def test_monai_dice_multiclass(batch, squared, jaccard, include_background):
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = _index_target()
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=batch,
                                squared_pred=squared, jaccard=jaccard,
                                include_background=include_background, smooth_nr=0.0,
                                smooth_dr=EPS)(x, t.unsqueeze(1))  # fmt: skip
    fn = LF.soft_jaccard_loss if jaccard else LF.soft_dice_loss
    # MONAI's jaccard is 1 - 2I / (2(P + G - I) + e) = 1 - I / (P + G - I + e/2): our eps = e/2.
    # The tolerance is tight enough that eps = e (off by ~2e-8 relative here) fails; MONAI's
    # squared sums go through vector norms (||p||^2 + ||g||^2 - ||p - g||^2) / 2, which
    # loses ~1e-8 relative to cancellation, so the squared cases get 1e-6.
    ours = fn(x, t, task="multiclass", scope="batch" if batch else "image", squared=squared,
              include_background=include_background, eps=EPS / 2 if jaccard else EPS)
    _close(ours, ref, 1e-6 if squared else 1e-10)


def test_monai_jaccard_smooth_dr_is_twice_our_eps():
    # hand case: p = g = [1, 1, 0, 0]: I = P = G = 2, union 2. MONAI smooth_dr = 1:
    # 1 - 4 / (4 + 1) = 0.2; ours eps = 0.5: 1 - 2 / 2.5 = 0.2; ours eps = 1: 1 - 2/3.
    p = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64).view(1, 1, 2, 2)
    ref = monai_losses.DiceLoss(jaccard=True, smooth_nr=0.0, smooth_dr=1.0)(p, p)
    assert float(ref) == pytest.approx(0.2, abs=1e-12)
    ours = LF.soft_jaccard_loss(p, p, task="binary", from_logits=False, eps=0.5)
    assert float(ours) == pytest.approx(0.2, abs=1e-12)
    wrong = LF.soft_jaccard_loss(p, p, task="binary", from_logits=False, eps=1.0)
    assert float(wrong) == pytest.approx(1 / 3, abs=1e-12)


def test_monai_dice_class_weights_binary_multilabel_ignore():
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = _index_target()
    w = torch.tensor([0.5, 2.0, 1.0, 0.5], dtype=torch.float64)
    # MONAI: mean_c(w_c L_c); ours: sum_c w_c L_c / sum_c w_c -> equal when sum(w) = C
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True, weight=w,
                                smooth_nr=0.0, smooth_dr=EPS)(x, t.unsqueeze(1))  # fmt: skip
    _close(LF.soft_dice_loss(x, t, task="multiclass", class_weights=w, eps=EPS), ref)
    # multilabel: sigmoid per channel, multi-hot float target
    g = (torch.rand(N, C, H, W) > 0.5).double()
    ref = monai_losses.DiceLoss(sigmoid=True, batch=True, smooth_nr=0.0, smooth_dr=EPS)(x, g)
    _close(LF.soft_dice_loss(x, g, task="multilabel", eps=EPS), ref)
    # binary: one sigmoid channel
    xb, gb = x[:, :1], g[:, :1]
    ref = monai_losses.DiceLoss(sigmoid=True, batch=True, smooth_nr=0.0, smooth_dr=EPS)(xb, gb)
    _close(LF.soft_dice_loss(xb, gb, task="binary", eps=EPS), ref)
    # ignore_index 255 (outside the class range)
    ti = t.clone()
    ti[:, 1:3] = 255
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True, ignore_index=255,
                                smooth_nr=0.0, smooth_dr=EPS)(x, ti.unsqueeze(1))  # fmt: skip
    _close(LF.soft_dice_loss(x, ti, task="multiclass", ignore_index=255, eps=EPS), ref)


@pytest.mark.parametrize("batch", [True, False])
def test_monai_dice_ce(batch):
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = _index_target()
    w = torch.tensor([0.5, 2.0, 1.0, 0.5], dtype=torch.float64)
    ref = monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, batch=batch, weight=w,
                                  smooth_nr=0.0, smooth_dr=EPS, lambda_dice=0.7,
                                  lambda_ce=1.3)(x, t.unsqueeze(1))  # fmt: skip
    ours = LF.dice_ce_loss(x, t, task="multiclass", scope="batch" if batch else "image",
                           class_weights=w, eps=EPS, dice_weight=0.7, ce_weight=1.3)  # fmt: skip
    _close(ours, ref)
    # binary: MONAI uses BCE-with-logits for one channel
    xb = x[:, :1]
    gb = (torch.rand(N, 1, H, W) > 0.5).double()
    ref = monai_losses.DiceCELoss(sigmoid=True, batch=batch, smooth_nr=0.0,
                                  smooth_dr=EPS)(xb, gb)  # fmt: skip
    ours = LF.dice_ce_loss(xb, gb, task="binary", scope="batch" if batch else "image", eps=EPS)
    _close(ours, ref)


@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("batch", [True, False])
def test_monai_generalized_dice(w_type, batch):
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = _index_target()
    ref = monai_losses.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, w_type=w_type,
                                           batch=batch, smooth_nr=0.0,
                                           smooth_dr=EPS)(x, t.unsqueeze(1))  # fmt: skip
    ours = LF.generalized_dice_loss(x, t, task="multiclass", weight_type=w_type,
                                    scope="batch" if batch else "image", eps=EPS)  # fmt: skip
    _close(ours, ref)


@pytest.mark.parametrize("jaccard", [False, True])
def test_smp_multiclass_binary_multilabel(jaccard):
    cls = smp_losses.JaccardLoss if jaccard else smp_losses.DiceLoss
    fn = LF.soft_jaccard_loss if jaccard else LF.soft_dice_loss
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = _index_target()
    # smp clamps the denominator at eps instead of adding it: use a negligible eps
    kw = dict(smooth=0.0, eps=1e-12)
    _close(fn(x, t, task="multiclass", eps=0.0), cls("multiclass", **kw)(x, t))
    ti = t.clone()
    ti[:, 2] = 255
    _close(
        fn(x, ti, task="multiclass", ignore_index=255, eps=0.0),
        cls("multiclass", ignore_index=255, **kw)(x, ti),
    )
    cw = [0.5, 2.0, 1.0, 3.0]  # smp normalises by sum(w), as we do
    _close(
        fn(x, t, task="multiclass", class_weights=cw, eps=0.0),
        cls("multiclass", class_weights=cw, **kw)(x, t),
    )
    g = (torch.rand(N, C, H, W) > 0.5).double()
    _close(fn(x, g, task="multilabel", eps=0.0), cls("multilabel", **kw)(x, g))
    tb = torch.randint(0, 2, (N, H, W))
    _close(fn(x[:, :1], tb, task="binary", eps=0.0), cls("binary", **kw)(x[:, :1], tb))


def test_torchmetrics_hard_dice_and_generalized_dice():
    # with one-hot (hard) probabilities, 1 - soft Dice is the hard Dice score
    t = _index_target()
    pred = torch.randint(0, C, (N, H, W))
    pred[:, 0, :C] = torch.arange(C)  # every class predicted in every image too
    p = torch.nn.functional.one_hot(pred, C).permute(0, 3, 1, 2).float()
    g = torch.nn.functional.one_hot(t, C).permute(0, 3, 1, 2).long()
    ref = tm_seg.dice_score(p.long(), g, num_classes=C, average="macro",
                            aggregation_level="samplewise").mean()  # fmt: skip
    ours = 1 - LF.soft_dice_loss(p, t, task="multiclass", from_logits=False, scope="image",
                                 eps=0.0)  # fmt: skip
    _close(ours, ref)
    ref = tm_seg.generalized_dice_score(p.long(), g, num_classes=C, weight_type="square").mean()
    ours = 1 - LF.generalized_dice_loss(p, t, task="multiclass", from_logits=False,
                                        scope="image", eps=0.0)  # fmt: skip
    _close(ours, ref, tol=1e-5)


def test_we_differ_from_monai_on_absent_classes_on_purpose():
    """MONAI scores a class absent from the target as Dice ~0 (loss ~1); we skip it."""
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = torch.randint(0, C - 1, (N, H, W))  # class C-1 absent
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=0.0,
                                smooth_dr=EPS)(x, t.unsqueeze(1))  # fmt: skip
    ours = LF.soft_dice_loss(x, t, task="multiclass", eps=EPS)
    assert float(ref) > float(ours)
    # MONAI's value is ours averaged with a loss of 1 for the absent class
    stats = LF.dice_statistics(x, t, task="multiclass")
    d = 2 * stats.intersection.sum(0) / (stats.pred_sum.sum(0) + stats.target_sum.sum(0) + EPS)
    _close(ref, (1 - d).mean())
    _close(ours, (1 - d[: C - 1]).mean())


def test_soft_labels_monai_soft_label_and_smp_use_our_l1_form():
    # docs/dice.md §7: p = g = (0.3, 0.8) scores loss 0 in segwise, MONAI soft_label=True and
    # smp; MONAI's default product form gives 1 - 2 * 0.73 / 2.2 = 0.336...
    p = torch.tensor([0.3, 0.8], dtype=torch.float64).view(1, 1, 1, 2)
    ours = LF.soft_dice_loss(p, p, task="binary", from_logits=False, eps=0.0)
    assert float(ours) == pytest.approx(0.0, abs=1e-12)
    kw = dict(smooth_nr=0.0, smooth_dr=0.0)
    assert float(monai_losses.DiceLoss(soft_label=True, **kw)(p, p)) == pytest.approx(0, abs=1e-9)
    product = monai_losses.DiceLoss(soft_label=False, **kw)(p, p)
    assert float(product) == pytest.approx(1 - 1.46 / 2.2, abs=1e-9)
    smp = smp_losses.DiceLoss("binary", from_logits=False, smooth=0.0, eps=1e-12)(p, p)
    assert float(smp) == pytest.approx(0.0, abs=1e-6)


def test_monai_dicece_matches_only_with_softmax_true():
    # docs/dice.md §7: MONAI's default DiceCELoss (softmax=False) runs its Dice on raw logits
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = _index_target()
    ours = LF.dice_ce_loss(x, t, task="multiclass", eps=EPS)
    kw = dict(to_onehot_y=True, batch=True, smooth_nr=0.0, smooth_dr=EPS)
    _close(ours, monai_losses.DiceCELoss(softmax=True, **kw)(x, t.unsqueeze(1)))
    default = monai_losses.DiceCELoss(**kw)(x, t.unsqueeze(1))
    assert abs(float(default) - float(ours)) > 1e-3
