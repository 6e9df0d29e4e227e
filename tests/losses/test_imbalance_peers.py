"""Focal, Tversky, focal Tversky and Lovasz losses against MONAI and smp (float64, random inputs).

Each peer is configured to compute the same quantity; where its normalisation differs, the
factor is written next to the check (and in docs/dice.md §7).
"""

from __future__ import annotations

import pytest
import torch

from segwise.losses import focal_loss, focal_tversky_loss, lovasz_loss, tversky_loss

monai_losses = pytest.importorskip("monai.losses")
smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")

N, C, H, W = 2, 4, 6, 6
EPS = 1e-5


def _close(a, b, tol=1e-9):
    assert float(a) == pytest.approx(float(b), rel=tol, abs=tol)


def _index_target(c: int = C) -> torch.Tensor:
    t = torch.randint(0, c, (N, H, W))
    t[:, 0, :c] = torch.arange(c)  # every class present in every image
    return t


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_multiclass_vs_monai_softmax(gamma):
    torch.manual_seed(1)
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = _index_target()
    w = torch.tensor([0.5, 2.0, 1.0, 1.5], dtype=torch.float64)
    ref = monai_losses.FocalLoss(to_onehot_y=True, use_softmax=True, gamma=gamma, weight=w,
                                 reduction="sum")(x, t.unsqueeze(1))  # fmt: skip
    # MONAI computes in float32, and its "sum" is a sum over (N, C) of spatial means
    ours = focal_loss(x, t, task="multiclass", gamma=gamma, class_weights=w, reduction="sum")
    _close(ours / (H * W), ref, 1e-6)
    # MONAI's mean divides by N*C*H*W elements; ours by the (unweighted) target mass N*H*W
    ref = monai_losses.FocalLoss(to_onehot_y=True, use_softmax=True, gamma=gamma)(
        x, t.unsqueeze(1))
    _close(focal_loss(x, t, task="multiclass", gamma=gamma) / C, ref, 1e-6)


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_focal_multilabel_vs_monai_sigmoid_and_smp(alpha):
    torch.manual_seed(2)
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    g = (torch.rand(N, C, H, W) > 0.5).double()
    ours = focal_loss(x, g, task="multilabel", alpha=alpha, gamma=2.0)
    _close(ours, monai_losses.FocalLoss(gamma=2.0, alpha=alpha)(x, g), 1e-6)  # float32
    xb, tb = x[:, :1], g[:, :1]
    smp = smp_losses.FocalLoss("binary", alpha=alpha, gamma=2.0)(xb, tb)
    _close(focal_loss(xb, tb, task="binary", alpha=alpha, gamma=2.0), smp)


def test_focal_multiclass_vs_smp_is_multilabel_on_one_hot():
    # smp's multiclass focal runs a sigmoid focal loss per channel (one-vs-rest, no softmax)
    # and averages the class means: our multilabel focal on the one-hot target
    torch.manual_seed(3)
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = _index_target()
    t[0, 1, 1] = 255
    smp = smp_losses.FocalLoss("multiclass", gamma=2.0, ignore_index=255)(x, t)
    one_hot = torch.nn.functional.one_hot(t.clamp(max=C - 1), C).permute(0, 3, 1, 2).double()
    one_hot[t.unsqueeze(1).expand_as(one_hot) == 255] = 255.0
    ours = focal_loss(x, one_hot, task="multilabel", gamma=2.0, ignore_index=255)
    _close(ours, smp)


@pytest.mark.parametrize(("alpha", "beta"), [(0.3, 0.7), (0.5, 0.5), (0.9, 0.2)])
@pytest.mark.parametrize("batch", [True, False])
def test_tversky_vs_monai(alpha, beta, batch):
    torch.manual_seed(4)
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    t = _index_target()
    ref = monai_losses.TverskyLoss(softmax=True, to_onehot_y=True, alpha=alpha, beta=beta,
                                   batch=batch, smooth_nr=0.0, smooth_dr=EPS)(x, t.unsqueeze(1))
    ours = tversky_loss(x, t, task="multiclass", alpha=alpha, beta=beta, eps=EPS,
                        scope="batch" if batch else "image")
    _close(ours, ref)


@pytest.mark.parametrize("mode", ["multiclass", "binary", "multilabel"])
def test_tversky_vs_smp(mode):
    torch.manual_seed(5)
    c = 1 if mode == "binary" else C
    x = torch.randn(N, c, H, W, dtype=torch.float64)
    t = _index_target() if mode == "multiclass" else (torch.rand(N, c, H, W) > 0.5).double()
    if mode == "binary":
        t = t[:, 0].long()
    ref = smp_losses.TverskyLoss(mode, alpha=0.3, beta=0.7, eps=1e-12)(x, t)
    _close(tversky_loss(x, t, task=mode, alpha=0.3, beta=0.7, eps=0.0), ref)


def test_focal_tversky_binary_vs_smp():
    # smp raises the class MEAN to gamma; with one class that is our per-unit power
    torch.manual_seed(6)
    x = torch.randn(N, 1, H, W, dtype=torch.float64)
    t = torch.randint(0, 2, (N, H, W))
    ref = smp_losses.TverskyLoss("binary", alpha=0.3, beta=0.7, gamma=0.75, eps=1e-12)(x, t)
    ours = focal_tversky_loss(x, t, task="binary", alpha=0.3, beta=0.7, gamma=0.75, eps=0.0)
    _close(ours, ref)


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_softmax_vs_smp(per_image):
    torch.manual_seed(7)
    x = torch.randn(N, C, H, W)  # smp's Lovasz works in float32 only
    t = _index_target()
    t[1, 2, 3] = 255
    ref = smp_losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=255)(x, t)
    ours = lovasz_loss(x, t, task="multiclass", ignore_index=255,
                       scope="image" if per_image else "batch")
    _close(ours, ref, 1e-6)


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_hinge_vs_smp(per_image):
    torch.manual_seed(8)
    x = torch.randn(N, 1, H, W)
    t = torch.randint(0, 2, (N, H, W))
    t[:, 0, 0] = 1  # foreground in every image
    ref = smp_losses.LovaszLoss("binary", per_image=per_image)(x, t.unsqueeze(1).float())
    ours = lovasz_loss(x, t, task="binary", scope="image" if per_image else "batch")
    _close(ours, ref, 1e-6)
