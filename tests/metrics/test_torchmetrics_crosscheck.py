"""Cross-checks against torchmetrics (installed 1.9: ``functional.segmentation.dice_score`` /
``mean_iou`` and ``functional.classification.multiclass_*``), and the places where they differ.

torchmetrics is a dev dependency, imported lazily here only.
"""

from __future__ import annotations

import math

import pytest
import torch

from segwise.metrics import (
    ConfusionMatrix,
    PerImageDice,
    batch_confusion_matrix,
    dice_score,
    iou_score,
    scores_from_confusion,
)

tm_cls = pytest.importorskip("torchmetrics.functional.classification")
tm_seg = pytest.importorskip("torchmetrics.functional.segmentation")

C = 5


def _random_batch(seed: int, *, ignore: bool):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C - 1, (3, 9, 11), generator=g)  # class 4 never in the target
    pred = torch.randint(0, C - 1, (3, 9, 11), generator=g)
    pred[0, 0, 0] = 3
    target[target == 3] = 2  # class 3: predicted, absent from the target
    if ignore:
        target[torch.rand(target.shape, generator=g) < 0.2] = 255
    return pred, target


def _close(ours, theirs):
    ours = torch.as_tensor(ours, dtype=torch.float64)
    theirs = theirs.to(torch.float64)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_iou_accuracy_precision_match_multiclass_classification(seed):
    pred, target = _random_batch(seed, ignore=True)
    cm = ConfusionMatrix(C, ignore_index=255)
    cm.update(pred, target)
    s = cm.compute()
    kw = {"num_classes": C, "ignore_index": 255}
    tm_matrix = tm_cls.multiclass_confusion_matrix(pred, target, **kw)
    assert torch.equal(cm.matrix, tm_matrix)
    # per class: torchmetrics writes 0 (zero_division) where we write NaN (absent from both)
    tm_iou = tm_cls.multiclass_jaccard_index(pred, target, average="none", **kw)
    defined = ~torch.tensor(s.iou).isnan()
    _close(torch.tensor(s.iou)[defined], tm_iou[defined])
    assert tm_iou[~defined].eq(0).all() and not defined[4]
    # the macro mean leaves out classes absent from both in both libraries
    _close(s.mean_iou, tm_cls.multiclass_jaccard_index(pred, target, average="macro", **kw))
    _close(s.pixel_accuracy, tm_cls.multiclass_accuracy(pred, target, average="micro", **kw))
    recall = torch.tensor(s.recall)
    tm_recall = tm_cls.multiclass_recall(pred, target, average="none", **kw)
    _close(recall[~recall.isnan()], tm_recall[~recall.isnan()])
    precision = torch.tensor(s.precision)
    tm_precision = tm_cls.multiclass_precision(pred, target, average="none", **kw)
    _close(precision[~precision.isnan()], tm_precision[~precision.isnan()])
    dice = torch.tensor(s.dice)
    tm_f1 = tm_cls.multiclass_f1_score(pred, target, average="none", **kw)
    _close(dice[~dice.isnan()], tm_f1[~dice.isnan()])  # hard Dice = F1


def test_mean_accuracy_differs_for_a_class_predicted_but_absent_from_target():
    # class 2 is predicted, never in the target; class 3 absent from both
    target = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 2, 1, 1]]])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    ours = cm.compute().mean_accuracy  # recall of class 2 is undefined: (1/2 + 1) / 2
    theirs = tm_cls.multiclass_recall(pred, target, num_classes=4, average="macro")
    assert ours == pytest.approx(0.75)
    assert theirs.item() == pytest.approx(0.5)  # torchmetrics counts it as 0: (1/2 + 1 + 0) / 3


@pytest.mark.parametrize("seed", [0, 1])
def test_dataset_dice_matches_global_dice_score(seed):
    pred, target = _random_batch(seed, ignore=False)
    cm = ConfusionMatrix(C)
    cm.update(pred, target)
    s = cm.compute()
    kw = {"num_classes": C, "input_format": "index", "aggregation_level": "global"}
    tm_dice = tm_seg.dice_score(pred, target, average="none", **kw)[0]
    _close(s.dice, tm_dice)  # both NaN for the class absent from both
    _close(s.mean_dice, tm_seg.dice_score(pred, target, average="macro", **kw)[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_per_image_dice_matches_samplewise_dice_score(seed):
    pred, target = _random_batch(seed, ignore=False)
    acc = PerImageDice(C)
    acc.update(pred, target)
    r = acc.compute()
    kw = {"num_classes": C, "input_format": "index", "aggregation_level": "samplewise"}
    _close(r.dice, tm_seg.dice_score(pred, target, average="none", **kw))
    _close(r.per_image, tm_seg.dice_score(pred, target, average="macro", **kw))


def test_mean_iou_of_torchmetrics_is_per_image():
    pred, target = _random_batch(3, ignore=False)
    tm_per_class = tm_seg.mean_iou(
        pred, target, num_classes=C, input_format="index", per_class=True
    )
    tm_mean = tm_seg.mean_iou(pred, target, num_classes=C, input_format="index")
    for i, m in enumerate(batch_confusion_matrix(pred, target, num_classes=C)):
        s = scores_from_confusion(m)
        _close(torch.tensor(s.iou).nan_to_num(-1.0), tm_per_class[i])  # -1 marks "absent"
        _close(s.mean_iou, tm_mean[i])
    cm = ConfusionMatrix(C)
    cm.update(pred, target)
    # our dataset-level mIoU pools pixels; the mean of torchmetrics' per-image values does not
    assert not math.isclose(cm.compute().mean_iou, tm_mean.mean().item(), rel_tol=1e-6)


def test_binary_functional_matches_except_the_empty_rule():
    g = torch.Generator().manual_seed(0)
    p = torch.randint(0, 2, (4, 8, 8), generator=g)
    t = torch.randint(0, 2, (4, 8, 8), generator=g)
    _close(iou_score(p, t), tm_cls.binary_jaccard_index(p, t))
    _close(dice_score(p, t), tm_cls.binary_f1_score(p, t))
    empty = torch.zeros(6, dtype=torch.long)
    assert iou_score(empty, empty).item() == 1.0
    assert tm_cls.binary_jaccard_index(empty, empty).item() == 0.0  # zero_division=0 default
    assert tm_cls.binary_jaccard_index(empty, empty, zero_division=1).item() == 1.0
