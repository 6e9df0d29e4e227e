"""ConfusionMatrix and SegmentationScores: hand-worked golden values, rules and bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from segwise.metrics import ConfusionMatrix, confusion_matrix, scores_from_confusion

# A 3-class image worked by hand (docs/metrics.md uses the same example).
TARGET = torch.tensor([[[0, 0, 0, 1], [0, 0, 1, 1], [2, 2, 2, 2]]])
PRED = torch.tensor([[[0, 0, 1, 1], [0, 2, 1, 1], [2, 2, 2, 0]]])
# rows = target, columns = prediction
HAND_MATRIX = [[3, 1, 1], [0, 3, 0], [1, 0, 3]]


def test_hand_worked_three_class_matrix_and_every_score():
    cm = ConfusionMatrix(3, class_names=["bg", "road", "car"])
    cm.update(PRED, TARGET)
    assert cm.matrix.tolist() == HAND_MATRIX
    s = cm.compute()
    # class 0: TP3 FP1 FN2; class 1: TP3 FP1 FN0; class 2: TP3 FP1 FN1
    assert s.dice == pytest.approx((6 / 9, 6 / 7, 6 / 8))
    assert s.iou == pytest.approx((3 / 6, 3 / 4, 3 / 5))
    assert s.precision == pytest.approx((3 / 4, 3 / 4, 3 / 4))
    assert s.recall == pytest.approx((3 / 5, 1.0, 3 / 4))
    assert s.support == (5, 3, 4)
    assert s.num_pixels == 12
    assert s.pixel_accuracy == 9 / 12
    assert s.mean_dice == pytest.approx(191 / 252)
    assert s.mean_iou == pytest.approx(37 / 60)
    assert s.mean_accuracy == pytest.approx(47 / 60)
    assert s.frequency_weighted_iou == pytest.approx(143 / 240)  # 5/12*1/2 + 3/12*3/4 + 4/12*3/5
    assert s.class_names == ("bg", "road", "car")


def test_absent_class_rules():
    # 4 classes; class 2 is predicted but absent from the target; class 3 is absent from both.
    target = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 2, 1, 1]]])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    s = cm.compute()
    assert s.dice[:3] == pytest.approx((2 / 3, 1.0, 0.0))  # predicted-but-absent class gets 0
    assert s.iou[:3] == pytest.approx((0.5, 1.0, 0.0))
    assert math.isnan(s.dice[3]) and math.isnan(s.iou[3])  # absent from both: undefined
    assert s.precision[:3] == (1.0, 1.0, 0.0) and math.isnan(s.precision[3])
    assert s.recall[:2] == (0.5, 1.0)  # recall undefined without target pixels
    assert math.isnan(s.recall[2]) and math.isnan(s.recall[3])
    assert s.mean_dice == pytest.approx(5 / 9)  # (2/3 + 1 + 0) / 3: class 3 left out
    assert s.mean_iou == pytest.approx(0.5)
    assert s.mean_accuracy == pytest.approx(0.75)  # (1/2 + 1) / 2
    assert s.pixel_accuracy == 0.75
    assert s.frequency_weighted_iou == pytest.approx(0.75)  # 2/4*1/2 + 2/4*1


def test_class_never_predicted_has_undefined_precision_and_zero_dice():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([[[0, 0]]]), torch.tensor([[[0, 1]]]))
    s = cm.compute()
    assert math.isnan(s.precision[1]) and s.recall[1] == 0.0 and s.dice[1] == 0.0


def test_ignore_index_pixels_are_not_counted_whatever_is_predicted():
    target = TARGET.clone()
    target[0, 0, :2] = 255  # the two (0 -> 0) pixels
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(PRED, target)
    assert cm.matrix.tolist() == [[1, 1, 1], [0, 3, 0], [1, 0, 3]]
    # any prediction under an ignored pixel gives the same counts
    other = PRED.clone()
    other[0, 0, :2] = 2
    assert torch.equal(confusion_matrix(other, target, num_classes=3, ignore_index=255), cm.matrix)
    # a negative ignore value and a uint8 target work alike
    neg = torch.where(target == 255, -1, target)
    assert torch.equal(confusion_matrix(PRED, neg, num_classes=3, ignore_index=-1), cm.matrix)
    assert torch.equal(
        confusion_matrix(PRED, target.to(torch.uint8), num_classes=3, ignore_index=255), cm.matrix
    )


def test_nothing_counted_gives_nan_not_an_error():
    cm = ConfusionMatrix(2, ignore_index=255)
    s = cm.compute()
    assert s.num_pixels == 0
    assert all(math.isnan(v) for v in (s.pixel_accuracy, s.mean_iou, s.frequency_weighted_iou))
    cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255))
    assert cm.compute().num_pixels == 0


def test_streaming_reset_merge_and_state_dict():
    a = ConfusionMatrix(3)
    a.update(PRED, TARGET)
    a.update(PRED, TARGET)
    assert a.matrix.tolist() == [[2 * v for v in row] for row in HAND_MATRIX]
    b = ConfusionMatrix(3)
    b.update(PRED, TARGET)
    assert a.merge(b) is a
    assert a.matrix.tolist() == [[3 * v for v in row] for row in HAND_MATRIX]
    state = a.state_dict()
    assert set(state) == {"num_classes", "ignore_index", "confmat"}
    c = ConfusionMatrix(3)
    c.load_state_dict(state)
    assert torch.equal(c.matrix, a.matrix)
    # ratios are unchanged by tripling every count
    assert c.compute().mean_dice == pytest.approx(191 / 252)
    c.reset()
    assert c.matrix.sum().item() == 0
    a.all_reduce()  # not distributed: a no-op
    assert a.matrix.tolist() == [[3 * v for v in row] for row in HAND_MATRIX]


def test_state_dict_survives_weights_only_load(tmp_path):
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(PRED, TARGET)
    torch.save(cm.state_dict(), tmp_path / "m.pt")
    back = ConfusionMatrix(3, ignore_index=255)
    back.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert back.matrix.tolist() == HAND_MATRIX


def test_to_dict_is_json_friendly_with_nan_as_none():
    cm = ConfusionMatrix(4, class_names=["a", "b", "c", "d"])
    cm.update(torch.tensor([[[0, 2, 1, 1]]]), torch.tensor([[[0, 0, 1, 1]]]))
    d = cm.compute().to_dict()
    text = json.dumps(d, allow_nan=False)  # raises on NaN
    back = json.loads(text)
    assert back["per_class"]["dice"][3] is None
    assert back["per_class"]["recall"][2] is None
    assert back["per_class"]["support"] == [2, 2, 0, 0]
    assert back["class_names"] == ["a", "b", "c", "d"]
    assert back["mean_iou"] == pytest.approx(0.5)
    assert back["num_pixels"] == 4


def test_scores_are_frozen():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    s = cm.compute()
    with pytest.raises(AttributeError):
        s.mean_iou = 1.0


def test_compute_class_names_override():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    assert cm.compute().class_names is None
    assert cm.compute(class_names=["x", "y", "z"]).class_names == ("x", "y", "z")


def test_bad_update_input_leaves_state_unchanged():
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(PRED, TARGET)
    before = cm.matrix
    cases = [
        (PRED.float(), TARGET, r"pred has dtype torch.float32; expected an integer"),
        (PRED, TARGET.float(), r"target has dtype torch.float32"),
        (PRED[0], TARGET[0], r"expected two \(N, H, W\) label maps"),
        (PRED, TARGET[:, :2], r"pred shape \(1, 3, 4\) does not match target shape \(1, 2, 4\)"),
        (PRED + 1, TARGET, r"pred contains the value 3; expected class indices in \[0, 3\)"),
        (PRED - 1, TARGET, r"pred contains the value -1"),
        (torch.where(TARGET == 2, 255, PRED), TARGET, r"pred contains the value 255"),
        (PRED, TARGET + 1, r"target contains the value 3; .*\[0, 3\) or ignore_index=255"),
        (PRED, TARGET - 1, r"target contains the value -1"),
    ]
    for pred, target, match in cases:
        with pytest.raises(ValueError, match=match):
            cm.update(pred, target)
    assert torch.equal(cm.matrix, before)


def test_ignore_value_without_ignore_index_is_an_error_that_says_what_to_do():
    with pytest.raises(ValueError, match=r"target contains the value 255.*pass ignore_index"):
        ConfusionMatrix(3).update(PRED, torch.full_like(TARGET, 255))


def test_bad_constructor_and_merge_arguments():
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=rf"num_classes={bad!r} is not valid"):
            ConfusionMatrix(bad)
    with pytest.raises(ValueError, match=r"metric: ignore_index=1 lies inside the 3 classes"):
        ConfusionMatrix(3, ignore_index=1)
    with pytest.raises(ValueError, match=r"ignore_index=2.5 is not valid"):
        ConfusionMatrix(3, ignore_index=2.5)
    with pytest.raises(ValueError, match=r"class_names=\['a'\] is not valid; expected 3 strings"):
        ConfusionMatrix(3, class_names=["a"])
    with pytest.raises(ValueError, match=r"other has num_classes=4, ignore_index=None; expected "):
        ConfusionMatrix(3).merge(ConfusionMatrix(4))
    with pytest.raises(ValueError, match=r"other has num_classes=3, ignore_index=255"):
        ConfusionMatrix(3).merge(ConfusionMatrix(3, ignore_index=255))
    with pytest.raises(ValueError, match=r"other is a Tensor; expected a ConfusionMatrix"):
        ConfusionMatrix(3).merge(torch.zeros(3, 3))


def test_bad_state_dicts():
    cm = ConfusionMatrix(3)
    good = cm.state_dict()
    with pytest.raises(ValueError, match=r"state has num_classes=4"):
        cm.load_state_dict({**good, "num_classes": 4})
    with pytest.raises(ValueError, match=r"missing the keys \['confmat'\]"):
        cm.load_state_dict({"num_classes": 3, "ignore_index": None})
    with pytest.raises(ValueError, match=r"state\['confmat'\]=\(2, 2\) is not valid"):
        cm.load_state_dict({**good, "confmat": torch.zeros(2, 2, dtype=torch.long)})
    with pytest.raises(ValueError, match=r"state\['confmat'\]=\(3, 3\) is not valid"):
        cm.load_state_dict({**good, "confmat": torch.zeros(3, 3)})


def test_scores_from_confusion_rejects_bad_matrices():
    for bad in (torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 2), -torch.ones(2, 2).long()):
        with pytest.raises(ValueError, match=r"expected a \(C, C\) tensor of non-negative integer"):
            scores_from_confusion(bad)
