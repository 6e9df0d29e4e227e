"""Binary Dice/IoU golden values and empty rules; labels_from_logits; bad input."""

from __future__ import annotations

import math

import pytest
import torch

from segwise.enums import Task
from segwise.metrics import dice_score, iou_score, labels_from_logits

GT = torch.tensor([1, 0, 0, 1, 0, 0])
PRED = torch.tensor([1, 0, 1, 1, 0, 0])


def test_worked_example_dice_is_exactly_0_8_and_iou_two_thirds():
    # |P∩T| = 2, |P| = 3, |T| = 2 -> Dice 2*2/(3+2), IoU 2/(3+2-2)
    assert dice_score(PRED, GT).item() == 0.8
    assert iou_score(PRED, GT).item() == pytest.approx(2 / 3, abs=1e-15)


def test_bool_and_integer_masks_agree():
    assert dice_score(PRED.bool(), GT.bool()).item() == 0.8
    assert dice_score(PRED.to(torch.uint8), GT.to(torch.int32)).item() == 0.8


@pytest.mark.parametrize("fn", [dice_score, iou_score])
def test_empty_rules(fn):
    empty = torch.zeros(2, 3, dtype=torch.long)
    some = torch.tensor([[0, 1, 0], [0, 0, 0]])
    assert fn(empty, empty).item() == 1.0  # both empty: perfect, not 0, not NaN
    assert fn(some, empty).item() == 0.0  # false positives on an empty target
    assert fn(empty, some).item() == 0.0  # missed everything


def test_dim_gives_one_value_per_image():
    target = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[1, 0], [0, 0]]])
    pred = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 1]]])
    # image 0: TP1 FP0 FN1 -> 2/3; image 1: empty/empty -> 1; image 2: TP0 -> 0
    per_image = dice_score(pred, target, dim=(-2, -1))
    assert per_image.shape == (3,)
    assert per_image.tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert iou_score(pred, target, dim=(1, 2)).tolist() == pytest.approx([0.5, 1.0, 0.0])
    # pooled over the whole batch: TP1 FP1 FN2 -> 2/5
    assert dice_score(pred, target).item() == pytest.approx(0.4)


@pytest.mark.parametrize("fn", [dice_score, iou_score])
def test_bad_masks(fn):
    with pytest.raises(ValueError, match=r"pred has dtype torch.float32.*hard mask"):
        fn(PRED.float(), GT)
    with pytest.raises(ValueError, match=r"target has dtype torch.float64"):
        fn(PRED, GT.double())
    with pytest.raises(ValueError, match=r"pred contains the value 2; expected a mask of 0/1"):
        fn(PRED * 2, GT)
    with pytest.raises(ValueError, match=r"pred shape \(1, 6\) does not match target shape \(6,\)"):
        fn(PRED[None], GT)  # no silent broadcast
    with pytest.raises(ValueError, match="pred must be a torch.Tensor"):
        fn([1, 0], GT)


def test_labels_from_logits_binary_threshold():
    logits = torch.tensor([-1.0, 0.0, 0.1, 3.0]).view(1, 1, 1, 4)
    assert labels_from_logits(logits, Task.BINARY).tolist() == [[[0, 0, 1, 1]]]
    # logit(0.9) = log 9 ≈ 2.197: only 3.0 passes
    assert labels_from_logits(logits, "binary", threshold=0.9).tolist() == [[[0, 0, 0, 1]]]
    # logit(0.25) = -log 3 ≈ -1.099: -1.0 passes too
    assert labels_from_logits(logits, "binary", threshold=0.25).tolist() == [[[1, 1, 1, 1]]]
    out = labels_from_logits(logits, "binary")
    assert out.dtype == torch.int64 and out.shape == (1, 1, 4)


def test_labels_from_logits_binary_matches_sigmoid_rule():
    logits = torch.randn(2, 1, 5, 7) * 3
    for t in (0.2, 0.5, 0.7):
        expected = (torch.sigmoid(logits.double()) > t).long()[:, 0]
        assert torch.equal(labels_from_logits(logits, "binary", threshold=t), expected)


def test_labels_from_logits_exact_where_sigmoid_saturates():
    # sigmoid(20) rounds to 1.0 in float32; the logit-space rule still separates 18 and 20
    logits = torch.tensor([18.0, 20.0]).view(1, 1, 1, 2)
    t = 1 / (1 + math.exp(-19.0))
    assert labels_from_logits(logits, "binary", threshold=t).tolist() == [[[0, 1]]]


def test_labels_from_logits_multiclass_argmax():
    logits = torch.tensor([[[[0.0, 2.0]], [[1.0, 2.0]], [[-1.0, 0.0]]]])  # (1, 3, 1, 2)
    # pixel 0: class 1 wins; pixel 1: tie between 0 and 1 -> lowest index 0
    assert labels_from_logits(logits, Task.MULTICLASS).tolist() == [[[1, 0]]]


def test_labels_from_logits_bad_input():
    with pytest.raises(ValueError, match=r"task='sigmoid' is not valid"):
        labels_from_logits(torch.zeros(1, 1, 2, 2), "sigmoid")
    with pytest.raises(ValueError, match=r"task='multilabel' is not valid here"):
        labels_from_logits(torch.zeros(1, 3, 2, 2), Task.MULTILABEL)
    with pytest.raises(ValueError, match=r"3 channels.*expects \(N, 1, H, W\)"):
        labels_from_logits(torch.zeros(1, 3, 2, 2), "binary")
    with pytest.raises(ValueError, match=r"1 channel.*C >= 2"):
        labels_from_logits(torch.zeros(1, 1, 2, 2), "multiclass")
    with pytest.raises(ValueError, match=r"shape \(1, 2, 2\); expected \(N, C, H, W\)"):
        labels_from_logits(torch.zeros(1, 2, 2), "multiclass")
    with pytest.raises(ValueError, match=r"torch.int64; expected a float tensor"):
        labels_from_logits(torch.zeros(1, 2, 2, 2, dtype=torch.long), "multiclass")
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"threshold={bad!r} is not valid"):
            labels_from_logits(torch.zeros(1, 1, 2, 2), "binary", threshold=bad)
