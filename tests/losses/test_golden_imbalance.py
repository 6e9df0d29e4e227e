"""Hand-computed values of the focal, Tversky, focal Tversky and Lovasz losses and reductions.

Every number below is worked out in the comment next to it (docs/dice.md §6 repeats them).
"""

from __future__ import annotations

import math

import pytest
import torch

from segwise.losses import (
    FocalLoss,
    LovaszLoss,
    TverskyLoss,
    focal_loss,
    focal_tversky_loss,
    lovasz_loss,
    tversky_loss,
)
from segwise.losses import functional as LF

# the multiclass example of test_golden.py: p_t = 0.7, 0.6, 0.5 at targets 0, 2, 1
P_MC = torch.tensor([[0.7, 0.1, 0.2], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]]).view(1, 3, 1, 3)
G_MC = torch.tensor([0, 2, 1]).view(1, 1, 3)


def _approx(x, expected):
    return pytest.approx(expected, abs=1e-6)


def test_focal_binary_by_hand():
    p = torch.tensor([0.8, 0.4]).view(1, 1, 1, 2)
    g = torch.tensor([1, 0]).view(1, 1, 2)
    # pixel 1 (g=1): (1 - 0.8)^2 * -ln 0.8; pixel 2 (g=0): 0.4^2 * -ln 0.6
    a, b = 0.04 * -math.log(0.8), 0.16 * -math.log(0.6)
    assert focal_loss(p, g, task="binary", from_logits=False).item() == _approx(0, (a + b) / 2)
    # alpha = 0.25: positives x 0.25, negatives x 0.75; the mean still divides by 2 pixels
    value = focal_loss(p, g, task="binary", from_logits=False, alpha=0.25).item()
    assert value == _approx(0, (0.25 * a + 0.75 * b) / 2)
    assert focal_loss(p, g, task="binary", from_logits=False, reduction="sum").item() == _approx(
        0, a + b)
    per_pixel = focal_loss(p, g, task="binary", from_logits=False, reduction="none")
    assert per_pixel.shape == (1, 1, 1, 2)
    assert per_pixel.flatten().tolist() == pytest.approx([a, b], abs=1e-6)
    # soft target 0.5 on pixel 2: 0.5 * (0.6^2 * -ln 0.4) + 0.5 * (0.4^2 * -ln 0.6)
    soft = torch.tensor([1.0, 0.5]).view(1, 1, 1, 2)
    b_soft = 0.5 * 0.36 * -math.log(0.4) + 0.5 * 0.16 * -math.log(0.6)
    assert focal_loss(p, soft, task="binary", from_logits=False).item() == _approx(
        0, (a + b_soft) / 2)


def test_focal_multiclass_by_hand():
    f = [(1 - q) ** 2 * -math.log(q) for q in (0.7, 0.6, 0.5)]  # pixels with targets 0, 2, 1
    kw = dict(task="multiclass", from_logits=False)
    assert focal_loss(P_MC, G_MC, **kw).item() == _approx(0, sum(f) / 3)
    # class weights (1, 2, 1): targets 0, 2, 1 weigh 1, 1, 2; mean over the weight mass 4
    cw = focal_loss(P_MC, G_MC, class_weights=[1.0, 2.0, 1.0], **kw).item()
    assert cw == _approx(0, (f[0] + f[1] + 2 * f[2]) / 4)
    # without background: pixel 0 (class 0) weighs 0
    assert focal_loss(P_MC, G_MC, include_background=False, **kw).item() == _approx(
        0, (f[1] + f[2]) / 2)
    assert focal_loss(P_MC, G_MC, reduction="none", **kw).flatten().tolist() == pytest.approx(
        f, abs=1e-6)
    # gamma = 0 is cross-entropy
    ce = -(math.log(0.7) + math.log(0.6) + math.log(0.5)) / 3
    assert focal_loss(P_MC, G_MC, gamma=0.0, **kw).item() == _approx(0, ce)
    # ignored pixel: target 255 at pixel 1 leaves pixels 0 and 2
    t = G_MC.clone()
    t[0, 0, 1] = 255
    assert FocalLoss(task="multiclass", from_logits=False, ignore_index=255)(P_MC, t).item() == (
        _approx(0, (f[0] + f[2]) / 2))


P_BIN = torch.tensor([0.9, 0.6, 0.4, 0.3]).view(1, 1, 2, 2)
G_BIN = torch.tensor([1, 1, 0, 0]).view(1, 2, 2)


def test_tversky_and_focal_tversky_by_hand():
    # I = 0.9 + 0.6 = 1.5, P = 2.2, G = 2: FP = 0.7, FN = 0.5
    kw = dict(task="binary", from_logits=False, eps=0.0)
    ti = 1.5 / (1.5 + 0.3 * 0.7 + 0.7 * 0.5)  # = 1.5 / 2.06
    assert tversky_loss(P_BIN, G_BIN, alpha=0.3, beta=0.7, **kw).item() == _approx(0, 1 - ti)
    assert focal_tversky_loss(P_BIN, G_BIN, alpha=0.3, beta=0.7, gamma=0.75, **kw).item() == (
        _approx(0, (1 - ti) ** 0.75))
    # alpha = beta = 0.5 is Dice: 2 * 1.5 / (2.2 + 2) = 3 / 4.2
    assert tversky_loss(P_BIN, G_BIN, alpha=0.5, beta=0.5, **kw).item() == _approx(0, 1 - 3 / 4.2)
    # alpha = beta = 1 is Jaccard: 1.5 / (2.2 + 2 - 1.5) = 1.5 / 2.7
    assert tversky_loss(P_BIN, G_BIN, alpha=1.0, beta=1.0, **kw).item() == _approx(0, 1 - 1.5 / 2.7)
    # module defaults alpha = 0.3, beta = 0.7
    assert TverskyLoss(task="binary", from_logits=False, eps=0.0)(P_BIN, G_BIN).item() == (
        _approx(0, 1 - ti))


def test_tversky_multiclass_alpha_not_beta_by_hand():
    # per class (I, P, G): class 0 (0.7, 1.0, 1), class 1 (0.5, 1.0, 1), class 2 (0.6, 1.0, 1)
    # FP = P - I = FN = G - I, so TI = I / (I + (alpha + beta)(1 - I)); alpha + beta = 1.5
    kw = dict(task="multiclass", from_logits=False, eps=0.0, alpha=0.5, beta=1.0)
    ti = [i / (i + 1.5 * (1 - i)) for i in (0.7, 0.5, 0.6)]
    expected = sum(1 - t for t in ti) / 3
    assert tversky_loss(P_MC, G_MC, **kw).item() == _approx(0, expected)


def test_lovasz_hinge_by_hand():
    # z = [2, -1, 0.5, -0.5], g = [1, 1, 0, 0]: errors 1 - z(2g - 1) = [-1, 2, 1.5, 0.5].
    # Sorted: 2 (g=1), 1.5 (0), 0.5 (0), -1 (1); G = 2. J_k = 1 - (G - cum g) / (G + cum(1-g)):
    # 1 - 1/2, 1 - 1/3, 1 - 1/4, 1 - 0/4 -> increments 1/2, 1/6, 1/12, 1/4.
    # loss = 2 * 1/2 + 1.5 * 1/6 + 0.5 * 1/12 + max(0, -1) * 1/4 = 31/24
    z = torch.tensor([2.0, -1.0, 0.5, -0.5]).view(1, 1, 2, 2)
    g = torch.tensor([1, 1, 0, 0]).view(1, 2, 2)
    assert lovasz_loss(z, g, task="binary").item() == _approx(0, 31 / 24)
    # ignoring the pixel with error 1.5 (index 2): sorted 2 (1), 0.5 (0), -1 (1):
    # J = 1 - 1/2, 1 - 1/3, 1 -> 2 * 1/2 + 0.5 * 1/6 = 13/12
    t = g.clone()
    t[0, 1, 0] = 255
    assert LovaszLoss(task="binary", ignore_index=255)(z, t).item() == _approx(0, 13 / 12)


def test_lovasz_softmax_by_hand():
    # C = 2, p1 = [0.8, 0.3, 0.6], labels [1, 0, 0].
    # class 1: errors |g - p| = [0.2, 0.3, 0.6]; sorted 0.6 (g=0), 0.3 (0), 0.2 (1), G = 1:
    #   J = 1 - 1/2, 1 - 1/3, 1 - 0/3 -> increments 1/2, 1/6, 1/3 -> 0.3 + 0.05 + 0.2/3 = 5/12
    # class 0: p0 = [0.2, 0.7, 0.4], g = [0, 1, 1]: errors [0.2, 0.3, 0.6]; sorted 0.6 (1),
    #   0.3 (1), 0.2 (0), G = 2: J = 1/2, 1, 1 -> 0.6/2 + 0.3/2 = 0.45;  mean 13/30
    p1 = torch.tensor([0.8, 0.3, 0.6])
    p = torch.stack([1 - p1, p1]).view(1, 2, 1, 3)
    t = torch.tensor([1, 0, 0]).view(1, 1, 3)
    kw = dict(task="multiclass", from_logits=False)
    assert lovasz_loss(p, t, **kw).item() == _approx(0, 13 / 30)
    assert lovasz_loss(p, t, reduction="none", **kw).tolist() == pytest.approx([0.45, 5 / 12])
    assert lovasz_loss(p, t, include_background=False, **kw).item() == _approx(0, 5 / 12)
    # class weights (1, 3): (0.45 + 3 * 5/12) / 4
    assert lovasz_loss(p, t, class_weights=[1.0, 3.0], **kw).item() == _approx(
        0, (0.45 + 1.25) / 4)


def test_lovasz_empty_rule_by_hand():
    # class 1 absent: skip -> only class 0 (all g = 1, errors p1 = [0.8, 0.3, 0.6]:
    # sorted 0.8, 0.6, 0.3, G = 3: J = 1 - 2/3, 1 - 1/3, 1 -> 0.8/3 + 0.6/3 + 0.3/3 = 1.7/3).
    # fp_rate: class 1 scored too; G = 0: J = 1 from the first pixel -> its largest error 0.8
    p1 = torch.tensor([0.8, 0.3, 0.6])
    p = torch.stack([1 - p1, p1]).view(1, 2, 1, 3)
    t = torch.zeros(1, 1, 3, dtype=torch.long)
    kw = dict(task="multiclass", from_logits=False)
    assert lovasz_loss(p, t, **kw).item() == _approx(0, 1.7 / 3)
    assert lovasz_loss(p, t, empty="fp_rate", **kw).item() == _approx(0, (1.7 / 3 + 0.8) / 2)


def test_reductions_of_the_dice_example():
    # per-class Dice losses 0.3, 0.5, 0.4 (test_golden.py); class weights (1, 2, 1)
    kw = dict(task="multiclass", from_logits=False, eps=0.0)
    assert LF.soft_dice_loss(P_MC, G_MC, reduction="sum", **kw).item() == _approx(0, 1.2)
    none = LF.soft_dice_loss(P_MC, G_MC, reduction="none", **kw)
    assert none.shape == (3,) and none.tolist() == pytest.approx([0.3, 0.5, 0.4], abs=1e-6)
    w = dict(class_weights=[1.0, 2.0, 1.0])
    assert LF.soft_dice_loss(P_MC, G_MC, reduction="sum", **w, **kw).item() == _approx(0, 1.7)
    image = LF.soft_dice_loss(P_MC, G_MC, reduction="none", scope="image", **kw)
    assert image.shape == (1, 3)


def test_perfect_predictions_score_zero():
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    kw = dict(task="binary", from_logits=False)
    assert tversky_loss(g, g, alpha=0.2, beta=0.8, **kw).item() == _approx(0, 0.0)
    assert focal_tversky_loss(g, g, gamma=0.75, **kw).item() == _approx(0, 0.0)
    assert focal_loss(g.clamp(1e-7, 1 - 1e-7), g, **kw).item() == _approx(0, 0.0)
    soft = torch.tensor([0.3, 0.8]).view(1, 1, 1, 2)  # soft labels: p = g scores 0 too
    assert tversky_loss(soft, soft, alpha=0.3, beta=0.7, **kw).item() == _approx(0, 0.0)
