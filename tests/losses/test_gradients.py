"""Gradients: gradcheck in float64, the fused path against plain autograd, extreme logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segwise.losses import LossName, create_loss, focal_loss, focal_tversky_loss, lovasz_loss
from segwise.losses import functional as LF
from segwise.losses._fused import softmax_index_sums


def _target(task: str, kind: str, n=2, c=3, h=3, w=3, dtype=torch.float64):
    if kind == "index":
        t = torch.randint(0, 2 if task == "binary" else c, (n, h, w))
        t[0, 0, 0] = 255
        return t
    ch = 1 if task == "binary" else c
    if task == "multiclass":
        return torch.softmax(torch.randn(n, ch, h, w, dtype=dtype) * 2, 1)
    return torch.rand(n, ch, h, w, dtype=dtype)


CASES = [
    ("binary", "index"), ("binary", "soft"), ("multiclass", "index"),
    ("multiclass", "soft"), ("multilabel", "soft"),
]  # fmt: skip


@pytest.mark.parametrize(("task", "kind"), CASES)
@pytest.mark.parametrize("name", list(LossName))
def test_gradcheck_float64(name, task, kind):
    c = 1 if task == "binary" else 3
    x = torch.randn(2, c, 3, 3, dtype=torch.float64, requires_grad=True)
    t = _target(task, kind)
    options = {"scope": "image"} if name not in (LossName.CE, LossName.FOCAL) else {}
    if name is LossName.FOCAL:
        options = {"gamma": 1.5, "alpha": None if task == "multiclass" else 0.25}
    loss = create_loss(name, task=task, num_classes=c, ignore_index=255, **options)
    kwargs = {}
    if name in (LossName.CE, LossName.DICECE):
        kwargs["pixel_weights"] = torch.rand(2, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: loss(z, t, **kwargs), (x,), fast_mode=True)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("empty", ["skip", "fp_rate"])
def test_gradcheck_options(squared, empty):
    x = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 2, (2, 3, 3))  # class 2 absent: exercises the empty rule
    kw = dict(task="multiclass", squared=squared, empty=empty, class_weights=[1.0, 2.0, 0.5])
    assert torch.autograd.gradcheck(lambda z: LF.soft_dice_loss(z, t, **kw), (x,), fast_mode=True)
    assert torch.autograd.gradcheck(
        lambda z: LF.soft_jaccard_loss(z, t, **kw), (x,), fast_mode=True
    )


def test_gradcheck_full_jacobian_of_the_fused_path():
    # every output of the hand-written backward (Dice sums and CE numerator), full Jacobian
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[0, 1, 2, 3, 1], [2, 2, 0, 3, 1]])  # 3 = ignored
    valid = (labels < 3).to(torch.float64)
    u = torch.rand(2, 5, dtype=torch.float64) * valid
    assert torch.autograd.gradcheck(
        lambda z: softmax_index_sums(z, labels, valid, u, True), (x,)
    )


def _reference_dice_ce(x, t, ignore_index, cw, pw):
    """Naive one-hot Dice + CE through plain autograd (the definition, written out)."""
    c = x.shape[1]
    valid = (t != ignore_index).to(x.dtype)
    oh = F.one_hot(t.clamp(0, c - 1) * (t != ignore_index), c).permute(0, 3, 1, 2).to(x.dtype)
    oh = oh * valid.unsqueeze(1)
    p = torch.softmax(x, 1) * valid.unsqueeze(1)
    inter, psum, gsum = (p * oh).sum((0, 2, 3)), p.sum((0, 2, 3)), oh.sum((0, 2, 3))
    dice = 2 * inter / (psum + gsum + 1e-7)
    scored = (gsum > 0).to(x.dtype) * cw
    dice_loss = ((1 - dice) * scored).sum() / scored.sum()
    v = (oh * cw.view(1, -1, 1, 1)).sum(1) * pw
    ce = -(v * (torch.log_softmax(x, 1) * oh).sum(1)).sum() / v.sum()
    return dice_loss + ce


def test_fused_path_matches_plain_autograd():
    x = torch.randn(3, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 4, (3, 6, 7))  # class 4 absent
    t[1, :2] = 255
    cw = torch.tensor([1.0, 2.0, 0.5, 1.5, 1.0], dtype=torch.float64)
    pw = torch.rand(3, 6, 7, dtype=torch.float64)
    ours = LF.dice_ce_loss(x, t, task="multiclass", ignore_index=255, class_weights=cw,
                           pixel_weights=pw)  # fmt: skip
    ref = _reference_dice_ce(x, t, 255, cw, pw)
    g1, = torch.autograd.grad(ours, x)
    g2, = torch.autograd.grad(ref, x)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-10)
    assert torch.allclose(g1, g2, rtol=1e-9, atol=1e-12)


def test_fused_backward_twice_with_retain_graph():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randint(0, 3, (2, 4, 4))
    loss = LF.dice_ce_loss(x, t, task="multiclass")
    g1, = torch.autograd.grad(loss, x, retain_graph=True)
    g2, = torch.autograd.grad(loss, x)
    assert torch.allclose(g1, g2, atol=1e-7)


def test_ce_underflowing_probability_is_exact():
    # p of the target class is exp(-200) (underflows float32): CE must be 200 + log(1 + e^-200)
    x = torch.tensor([200.0, 0.0]).view(1, 2, 1, 1)
    t = torch.ones(1, 1, 1, dtype=torch.long)
    ce = LF.cross_entropy_loss(x, t, task="multiclass")
    assert ce.item() == pytest.approx(200.0, rel=1e-6)
    _, _, num = softmax_index_sums(x.view(1, 2, 1), t.view(1, 1), None, None, True)
    assert num.item() == pytest.approx(200.0, rel=1e-6)


@pytest.mark.parametrize("name", list(LossName))
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("empty_target", [False, True])
def test_finite_gradients_for_extreme_logits_and_empty_masks(name, task, empty_target):
    c = 1 if task == "binary" else 4
    signs = torch.randint(0, 2, (2, c, 5, 5)).float() * 2 - 1
    x = (signs * 1e4).requires_grad_(True)
    if task == "multilabel":
        t = torch.zeros(2, c, 5, 5) if empty_target else torch.randint(0, 2, (2, c, 5, 5)).float()
    else:
        t = torch.zeros(2, 5, 5, dtype=torch.long)
        if not empty_target:
            t = torch.randint(0, 2 if task == "binary" else c, (2, 5, 5))
    loss = create_loss(name, task=task, num_classes=c)(x, t)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_input_is_computed_in_float32(dtype):
    x = torch.randn(2, 3, 8, 8).to(dtype)
    t = torch.randint(0, 3, (2, 8, 8))
    for name in LossName:
        loss = create_loss(name, task="multiclass", num_classes=3)
        got = loss(x, t)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(loss(x.float(), t).item(), rel=1e-6, abs=1e-7)
    xr = x.clone().requires_grad_(True)
    create_loss("dicece", task="multiclass", num_classes=3)(xr, t).backward()
    assert xr.grad.dtype == dtype


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_gradcheck_focal_options_and_probabilities(gamma, task):
    c = 1 if task == "binary" else 3
    x = torch.randn(2, c, 3, 3, dtype=torch.float64, requires_grad=True)
    t = _target(task, "soft")
    w = None if task == "binary" else [1.0, 2.0, 0.5]
    kw = dict(task=task, gamma=gamma, class_weights=w, reduction="sum")
    assert torch.autograd.gradcheck(lambda z: focal_loss(z, t, **kw), (x,), fast_mode=True)
    probs = (torch.softmax(x, 1) if task == "multiclass" else torch.sigmoid(x)).detach()
    probs = probs.clamp(0.05, 0.95).requires_grad_(True)  # away from the clamp of the check
    assert torch.autograd.gradcheck(lambda p: focal_loss(p, t, from_logits=False, **kw),
                                    (probs,), fast_mode=True)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_gradcheck_lovasz_and_focal_tversky_options(task):
    c = 1 if task == "binary" else 3
    x = torch.randn(2, c, 4, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 2, (2, 4, 4))  # multiclass: class 2 absent, exercises the empty rule
    for empty in ("skip", "fp_rate"):
        kw = dict(task=task, empty=empty, scope="image")
        assert torch.autograd.gradcheck(lambda z, kw=kw: lovasz_loss(z, t, **kw), (x,),
                                        fast_mode=True)
        assert torch.autograd.gradcheck(
            lambda z, kw=kw: focal_tversky_loss(z, t, alpha=0.3, beta=0.7, gamma=0.75, **kw),
            (x,), fast_mode=True)


def test_focal_gradient_is_finite_when_the_target_probability_saturates():
    # gamma < 1: (1 - p_t) ** gamma has an infinite derivative at p_t = 1; the loss guards it
    x = torch.tensor([[[[40.0]], [[-40.0]]]], requires_grad=True)  # p_t == 1.0 in float32
    t = torch.zeros(1, 1, 1, dtype=torch.long)
    focal_loss(x, t, task="multiclass", gamma=0.5).backward()
    assert torch.isfinite(x.grad).all()


def test_gradcheck_weighted_sum():
    x = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    t = _target("multiclass", "index")
    loss = create_loss("dice+focal+lovasz", task="multiclass", num_classes=3, ignore_index=255,
                       weights=[1.0, 0.5, 0.25])  # fmt: skip
    assert torch.autograd.gradcheck(lambda z: loss(z, t), (x,), fast_mode=True)
