"""Metric options by hand: empty rules (exclude/one/zero), averages, per-image IoU."""

from __future__ import annotations

import math

import pytest
import torch

from segwise.metrics import (
    ConfusionMatrix,
    MetricEmptyRule,
    PerImageDice,
    dice_score,
    iou_score,
)

# target 0 0 0 1 1, prediction 0 0 1 1 0, 3 classes (class 2 absent from both):
# class 0: TP 2, FN 1, FP 1 -> Dice 4/6, IoU 2/4; class 1: TP 1, FN 1, FP 1 -> Dice 2/4, IoU 1/3
TARGET = torch.tensor([[[0, 0, 0, 1, 1]]])
PRED = torch.tensor([[[0, 0, 1, 1, 0]]])


def _scores(**kw):
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    return cm.compute(**kw)


def test_averages_by_hand():
    s = _scores()
    assert s.average("dice") == pytest.approx((2 / 3 + 1 / 2) / 2) == pytest.approx(s.mean_dice)
    # weighted by support (3, 2): (3 * 2/3 + 2 * 1/2) / 5 = 3/5
    assert s.average("dice", "weighted") == pytest.approx(3 / 5)
    assert s.average("dice", "sum") == pytest.approx(7 / 6)
    # weighted IoU is the frequency-weighted IoU: (3 * 1/2 + 2 * 1/3) / 5 = 13/30
    assert s.average("iou", "weighted") == pytest.approx(13 / 30)
    assert s.average("iou", "weighted") == pytest.approx(s.frequency_weighted_iou)
    with pytest.raises(ValueError, match="how='median' is not valid"):
        s.average("dice", "median")
    with pytest.raises(ValueError, match="name='f1' is not valid"):
        s.average("f1")


@pytest.mark.parametrize(
    ("empty", "class2", "mean_dice"),
    [("exclude", math.nan, 7 / 12), ("one", 1.0, (7 / 6 + 1) / 3), ("zero", 0.0, (7 / 6) / 3)],
)
def test_dataset_empty_rule_by_hand(empty, class2, mean_dice):
    s = _scores(empty=empty)
    assert (math.isnan(s.dice[2]) and math.isnan(class2)) or s.dice[2] == class2
    assert s.mean_dice == pytest.approx(mean_dice)
    assert math.isnan(s.precision[2]) and math.isnan(s.recall[2])  # never filled


@pytest.mark.parametrize(
    ("empty", "expected"), [("exclude", math.nan), ("one", 1.0), ("zero", 0.0)]
)
def test_binary_scores_empty_rule(empty, expected):
    z = torch.zeros(2, 3, dtype=torch.bool)
    for fn in (dice_score, iou_score):
        v = float(fn(z, z, empty=empty))
        assert (math.isnan(v) and math.isnan(expected)) or v == expected
    # one empty, the other not: 0 whatever the rule
    assert float(dice_score(z, ~z, empty=MetricEmptyRule.ONE)) == 0.0


@pytest.mark.parametrize(("empty", "mean_iou"), [("exclude", 0.5), ("one", 0.75), ("zero", 0.25)])
def test_per_image_iou_by_hand(empty, mean_iou):
    # image a: target 1 1 0 0, prediction 1 0 0 0 -> foreground IoU 1/2 (Dice 2/3);
    # image b: empty target and prediction -> the empty rule
    target = torch.tensor([[[1, 1, 0, 0]], [[0, 0, 0, 0]]])
    pred = torch.tensor([[[1, 0, 0, 0]], [[0, 0, 0, 0]]])
    pi = PerImageDice(2, classes=[1], empty=empty)
    pi.update(pred, target, ids=["a", "b"])
    s = pi.compute()
    assert float(s.iou[0, 1]) == pytest.approx(0.5) and float(s.dice[0, 1]) == pytest.approx(2 / 3)
    assert float(s.iou[0, 0]) == pytest.approx(2 / 3)  # background: TP 2, FP 1
    assert s.mean_iou == pytest.approx(mean_iou)
    assert s.to_dict()["per_image_iou"][0] == pytest.approx(0.5)
