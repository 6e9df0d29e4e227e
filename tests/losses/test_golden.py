"""Hand-computed values of every loss (definitions: docs/dice.md)."""

from __future__ import annotations

import math

import pytest
import torch

from segwise.losses import create_loss
from segwise.losses import functional as LF

# --- the worked binary example: GT 1 1 0 0, p 0.9 0.6 0.4 0.1 --------------------------------
P_BIN = torch.tensor([0.9, 0.6, 0.4, 0.1]).view(1, 1, 2, 2)
G_BIN = torch.tensor([1, 1, 0, 0]).view(1, 2, 2)


def test_binary_worked_example_dice_075_loss_025():
    # I = 0.9 + 0.6 = 1.5; P = 2.0; G = 2 -> Dice = 2 * 1.5 / (2.0 + 2) = 0.75
    loss = LF.soft_dice_loss(P_BIN, G_BIN, task="binary", from_logits=False, eps=0.0)
    assert loss.item() == pytest.approx(0.25, abs=1e-7)
    with_eps = LF.soft_dice_loss(P_BIN, G_BIN, task="binary", from_logits=False)  # eps = 1e-7
    assert with_eps.item() == pytest.approx(1 - 3.0 / (4.0 + 1e-7), abs=1e-7)


def test_binary_worked_example_soft_target_and_one_hot_give_the_same():
    soft = G_BIN.float().unsqueeze(1)  # (N, 1, H, W) float target with values in {0, 1}
    loss = LF.soft_dice_loss(P_BIN, soft, task="binary", from_logits=False, eps=0.0)
    assert loss.item() == pytest.approx(0.25, abs=1e-7)


def test_binary_worked_example_jaccard_and_squared():
    # Jaccard = I / (P + G - I) = 1.5 / (4 - 1.5) = 0.6
    j = LF.soft_jaccard_loss(P_BIN, G_BIN, task="binary", from_logits=False, eps=0.0)
    assert j.item() == pytest.approx(0.4, abs=1e-7)
    # squared: P = .81 + .36 + .16 + .01 = 1.34, G = 2 -> Dice = 3 / 3.34
    sq = LF.soft_dice_loss(P_BIN, G_BIN, task="binary", from_logits=False, squared=True, eps=0.0)
    assert sq.item() == pytest.approx(1 - 3.0 / 3.34, abs=1e-6)


def test_perfect_prediction_gives_zero():
    p = G_BIN.float().unsqueeze(1)
    for fn in (LF.soft_dice_loss, LF.soft_jaccard_loss, LF.generalized_dice_loss):
        assert fn(p, G_BIN, task="binary", from_logits=False, eps=0.0).item() == 0.0


# --- multiclass one-hot example: GT [0, 2, 1] -----------------------------------------------
# probabilities of 3 pixels (columns) for 3 classes (rows):
#   pixel:      0    1    2       GT: 0, 2, 1
#   class 0:  0.7  0.1  0.2   I0 = 0.7  P0 = 1.0  G0 = 1  Dice0 = 1.4 / 2.0 = 0.7
#   class 1:  0.2  0.3  0.5   I1 = 0.5  P1 = 1.0  G1 = 1  Dice1 = 1.0 / 2.0 = 0.5
#   class 2:  0.1  0.6  0.3   I2 = 0.6  P2 = 1.0  G2 = 1  Dice2 = 1.2 / 2.0 = 0.6
# mean Dice = 0.6, loss = 0.4
P_MC = torch.tensor([[0.7, 0.1, 0.2], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]]).view(1, 3, 1, 3)
G_MC = torch.tensor([0, 2, 1]).view(1, 1, 3)
G_MC_ONEHOT = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 1, 0]]).view(1, 3, 1, 3)


@pytest.mark.parametrize("target", [G_MC, G_MC_ONEHOT], ids=["index", "one-hot"])
def test_multiclass_example(target):
    kw = dict(task="multiclass", from_logits=False, eps=0.0)
    assert LF.soft_dice_loss(P_MC, target, **kw).item() == pytest.approx(0.4, abs=1e-6)
    # without background: (0.5 + 0.6) / 2 = 0.55
    nobg = LF.soft_dice_loss(P_MC, target, include_background=False, **kw)
    assert nobg.item() == pytest.approx(0.45, abs=1e-6)
    # class weights (1, 2, 1): (1 * 0.3 + 2 * 0.5 + 1 * 0.4) / 4 = 0.425
    cw = LF.soft_dice_loss(P_MC, target, class_weights=[1.0, 2.0, 1.0], **kw)
    assert cw.item() == pytest.approx(0.425, abs=1e-6)
    # Jaccard: J = I / (P + G - I): 0.7/1.3, 0.5/1.5, 0.6/1.4
    jac = 1 - (0.7 / 1.3 + 0.5 / 1.5 + 0.6 / 1.4) / 3
    assert LF.soft_jaccard_loss(P_MC, target, **kw).item() == pytest.approx(jac, abs=1e-6)
    # squared: P0 = .49+.01+.04 = .54, P1 = .04+.09+.25 = .38, P2 = .01+.36+.09 = .46
    sq = 1 - (1.4 / 1.54 + 1.0 / 1.38 + 1.2 / 1.46) / 3
    got = LF.soft_dice_loss(P_MC, target, squared=True, **kw)
    assert got.item() == pytest.approx(sq, abs=1e-6)
    # generalized Dice: G_c = 1 so w_c = 1: 2 * (0.7 + 0.5 + 0.6) / (3 + 3) = 0.6
    assert LF.generalized_dice_loss(P_MC, target, **kw).item() == pytest.approx(0.4, abs=1e-6)


def test_generalized_dice_weights_by_hand():
    # GT [0, 0, 1]; p(class 1) = [0.2, 0.4, 0.9], p(class 0) = [0.8, 0.6, 0.1];
    # class 0: I = .8 + .6 = 1.4, P = 1.5, G = 2; class 1: I = .9, P = 1.5, G = 1.
    # square: w = (1/4, 1) -> GD = 2 (1.4/4 + .9) / ((1.5 + 2)/4 + 2.5) = 2.5 / 3.375
    p1 = torch.tensor([0.2, 0.4, 0.9])
    p = torch.stack([1 - p1, p1]).view(1, 2, 1, 3)
    g = torch.tensor([0, 0, 1]).view(1, 1, 3)
    kw = dict(task="multiclass", from_logits=False, eps=0.0)
    square = 2 * (1.4 / 4 + 0.9) / ((1.5 + 2) / 4 + (1.5 + 1))
    simple = 2 * (1.4 / 2 + 0.9) / ((1.5 + 2) / 2 + (1.5 + 1))
    uniform = 2 * (1.4 + 0.9) / (3.5 + 2.5)
    for wt, gd in (("square", square), ("simple", simple), ("uniform", uniform)):
        got = LF.generalized_dice_loss(p, g, weight_type=wt, **kw)
        assert got.item() == pytest.approx(1 - gd, abs=1e-6), wt


def test_soft_labels_use_the_l1_intersection():
    # g = (0.5, 0.5), p = (0.5, 1.0): I = min = 0.5 + 0.5 = 1.0, P = 1.5, G = 1.0 -> Dice 0.8
    # (the product form would give 2 * (0.25 + 0.5) / 2.5 = 0.6)
    g = torch.tensor([0.5, 0.5]).view(1, 1, 1, 2)
    p = torch.tensor([0.5, 1.0]).view(1, 1, 1, 2)
    loss = LF.soft_dice_loss(p, g, task="binary", from_logits=False, eps=0.0)
    assert loss.item() == pytest.approx(0.2, abs=1e-6)
    # p == g (soft): exactly 0, linear and squared forms
    for squared in (False, True):
        same = LF.soft_dice_loss(g, g, task="binary", from_logits=False, squared=squared, eps=0)
        assert same.item() == 0.0


def test_soft_labels_multiclass_prediction_equal_to_target_gives_zero():
    g = torch.softmax(torch.randn(2, 4, 3, 3), dim=1)  # averaged annotators
    for fn in (LF.soft_dice_loss, LF.soft_jaccard_loss, LF.generalized_dice_loss):
        assert fn(g, g, task="multiclass", from_logits=False, eps=0.0).item() == pytest.approx(
            0.0, abs=1e-6
        )


# --- empty masks ---------------------------------------------------------------------------
def _two_images(p_empty: list[float]):
    p = torch.stack([P_BIN[0], torch.tensor(p_empty).view(1, 2, 2)])  # (2, 1, 2, 2)
    g = torch.stack([G_BIN[0], torch.zeros(2, 2, dtype=torch.long)])
    return p, g


def test_empty_rule_skip_leaves_empty_targets_out():
    p, g = _two_images([0.0, 0.0, 0.0, 0.0])
    kw = dict(task="binary", from_logits=False, scope="image", eps=0.0)
    # image 0: loss 0.25; image 1 (empty GT) is not scored, empty prediction or not
    assert LF.soft_dice_loss(p, g, **kw).item() == pytest.approx(0.25)
    p, g = _two_images([0.5, 0.0, 0.0, 0.0])
    assert LF.soft_dice_loss(p, g, **kw).item() == pytest.approx(0.25)


def test_empty_rule_fp_rate():
    kw = dict(task="binary", from_logits=False, scope="image", empty="fp_rate", eps=0.0)
    p, g = _two_images([0.0, 0.0, 0.0, 0.0])
    # empty/empty scores Dice 1: mean loss (0.25 + 0) / 2
    assert LF.soft_dice_loss(p, g, **kw).item() == pytest.approx(0.125)
    # one false positive of mass 0.5 on 4 pixels: Dice = 1 - 0.5 / 4 = 0.875 -> loss 0.125
    p, g = _two_images([0.5, 0.0, 0.0, 0.0])
    assert LF.soft_dice_loss(p, g, **kw).item() == pytest.approx((0.25 + 0.125) / 2)


def test_all_empty_batch_gives_zero_loss_and_zero_finite_gradient():
    x = torch.randn(2, 1, 3, 3, requires_grad=True)
    g = torch.zeros(2, 3, 3, dtype=torch.long)
    loss = LF.soft_dice_loss(x, g, task="binary")
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_absent_class_is_not_a_failure_in_multiclass():
    # class 2 absent from the target: only classes 0 and 1 are averaged
    p = P_MC
    g = torch.tensor([0, 0, 1]).view(1, 1, 3)
    # class 0: I = 0.7 + 0.1 = 0.8, P = 1.0, G = 2 -> 1.6 / 3; class 1: I = 0.5, P = 1, G = 1
    want = 1 - (1.6 / 3 + 1.0 / 2) / 2
    got = LF.soft_dice_loss(p, g, task="multiclass", from_logits=False, eps=0.0)
    assert got.item() == pytest.approx(want, abs=1e-6)


# --- ignore_index ----------------------------------------------------------------------------
def test_ignore_index_removes_pixels_from_numerator_and_denominator():
    extra = torch.tensor([0.3, 0.3, 0.4]).view(1, 3, 1, 1)  # a 4th pixel, to be ignored
    p = torch.cat([P_MC, extra], dim=3)
    g = torch.cat([G_MC, torch.full((1, 1, 1), 255)], dim=2)
    kw = dict(task="multiclass", from_logits=False, eps=0.0)
    assert LF.soft_dice_loss(p, g, ignore_index=255, **kw).item() == pytest.approx(0.4, abs=1e-6)
    s = LF.dice_statistics(p, g, task="multiclass", from_logits=False, ignore_index=255)
    assert torch.allclose(s.intersection, torch.tensor([[0.7, 0.5, 0.6]]))
    assert torch.allclose(s.pred_sum, torch.tensor([[1.0, 1.0, 1.0]]))  # not 1.3, 1.3, 1.4
    assert torch.equal(s.target_sum, torch.tensor([[1.0, 1.0, 1.0]]))
    assert torch.equal(s.count, torch.full((1, 3), 3.0))


def test_ignore_index_inside_class_range_is_refused():
    # ignore_index = 2 is a real class value: refused (segwise.labels.check_ignore_label)
    with pytest.raises(ValueError, match=r"ignore_index=2 lies inside the 3 classes"):
        LF.dice_statistics(P_MC, G_MC, task="multiclass", from_logits=False, ignore_index=2)


def test_ignore_index_binary_and_soft_targets():
    g = torch.tensor([1, 1, 0, 255]).view(1, 2, 2)
    # pixel 3 ignored: I = 1.5, P = 1.9, G = 2 -> Dice = 3 / 3.9
    loss = LF.soft_dice_loss(P_BIN, g, task="binary", from_logits=False, ignore_index=255, eps=0)
    assert loss.item() == pytest.approx(1 - 3 / 3.9, abs=1e-6)
    soft = torch.tensor([1.0, 1.0, 0.0, 255.0]).view(1, 1, 2, 2)
    loss2 = LF.soft_dice_loss(P_BIN, soft, task="binary", from_logits=False, ignore_index=255,
                              eps=0)  # fmt: skip
    assert loss2.item() == pytest.approx(loss.item(), abs=1e-7)


# --- cross-entropy ---------------------------------------------------------------------------
def test_cross_entropy_by_hand_with_class_and_pixel_weights():
    logits = P_MC.log()  # softmax(log p) = p since each column sums to 1
    ce = LF.cross_entropy_loss(logits, G_MC, task="multiclass")
    want = -(math.log(0.7) + math.log(0.6) + math.log(0.5)) / 3
    assert ce.item() == pytest.approx(want, abs=1e-6)
    # class weights (1, 2, 1) on GT (0, 2, 1): v = (1, 1, 2)
    cw = LF.cross_entropy_loss(logits, G_MC, task="multiclass", class_weights=[1.0, 2.0, 1.0])
    want = -(math.log(0.7) + math.log(0.6) + 2 * math.log(0.5)) / 4
    assert cw.item() == pytest.approx(want, abs=1e-6)
    ref = torch.nn.functional.cross_entropy(logits, G_MC, weight=torch.tensor([1.0, 2, 1]))
    assert cw.item() == pytest.approx(ref.item(), abs=1e-6)
    # pixel weights (1, 2, 0): (1 * -log .7 + 2 * -log .6) / 3
    pw = torch.tensor([1.0, 2.0, 0.0]).view(1, 1, 3)
    got = LF.cross_entropy_loss(logits, G_MC, task="multiclass", pixel_weights=pw)
    want = -(math.log(0.7) + 2 * math.log(0.6)) / 3
    assert got.item() == pytest.approx(want, abs=1e-6)


def test_binary_cross_entropy_by_hand():
    logits = torch.tensor([0.0, 2.0]).view(1, 1, 1, 2)
    g = torch.tensor([1, 0]).view(1, 1, 2)
    # -log sigmoid(0) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2)
    a, b = math.log(2), math.log(1 + math.e**2)
    assert LF.cross_entropy_loss(logits, g, task="binary").item() == pytest.approx((a + b) / 2)
    # class weights (background 3, foreground 1): (1 * a + 3 * b) / 4
    got = LF.cross_entropy_loss(logits, g, task="binary", class_weights=[3.0, 1.0])
    assert got.item() == pytest.approx((a + 3 * b) / 4, abs=1e-6)


def test_dice_ce_is_the_weighted_sum_of_its_terms():
    x = torch.randn(2, 4, 5, 5)
    t = torch.randint(0, 4, (2, 5, 5))
    t[0, 0, :] = 255
    pw = torch.rand(2, 5, 5)
    cw = [1.0, 2.0, 0.5, 1.0]
    kw = dict(task="multiclass", ignore_index=255, class_weights=cw)
    dice = LF.soft_dice_loss(x, t, **kw)
    ce = LF.cross_entropy_loss(x, t, pixel_weights=pw, **kw)
    got = LF.dice_ce_loss(x, t, dice_weight=0.3, ce_weight=2.0, pixel_weights=pw, **kw)
    assert got.item() == pytest.approx(0.3 * dice.item() + 2.0 * ce.item(), rel=1e-6)
    # the factory builds the same
    mod = create_loss("dicece", num_classes=4, dice_weight=0.3, ce_weight=2.0, **kw)
    assert mod(x, t, pixel_weights=pw).item() == pytest.approx(got.item(), rel=1e-6)


def test_batch_and_image_scopes_differ_as_defined():
    # two images: A perfect (Dice 1, G = 1), B all wrong (Dice 0, G = 3)
    p = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]).view(2, 1, 2, 2)
    g = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0]]).view(2, 2, 2)
    kw = dict(task="binary", from_logits=False, eps=0.0)
    # image: mean(0, 1) = 0.5; batch: I = 1, P = 1, G = 4 -> 1 - 2 / 5 = 0.6
    assert LF.soft_dice_loss(p, g, scope="image", **kw).item() == pytest.approx(0.5)
    assert LF.soft_dice_loss(p, g, scope="batch", **kw).item() == pytest.approx(0.6)
