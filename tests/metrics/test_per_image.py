"""PerImageDice: per-image vs dataset-level Dice, empty rules, worst-k, streaming state."""

from __future__ import annotations

import json
import math

import pytest
import torch

from segwise.metrics import ConfusionMatrix, MetricEmptyRule, PerImageDice

# Two 1x4 binary images (docs/metrics.md works this example):
# A: a large object found exactly; B: a one-pixel object missed.
TARGET = torch.tensor([[[1, 1, 1, 1]], [[1, 0, 0, 0]]])
PRED = torch.tensor([[[1, 1, 1, 1]], [[0, 0, 0, 0]]])


def test_per_image_and_dataset_dice_differ_on_hand_example():
    per_image = PerImageDice(2, classes=[1])
    per_image.update(PRED, TARGET, ids=["A", "B"])
    r = per_image.compute()
    assert r.per_image.tolist() == [1.0, 0.0]  # A: 2*4/(4+4); B: 0/(0+1)
    assert r.mean == 0.5
    dataset = ConfusionMatrix(2)
    dataset.update(PRED, TARGET)
    assert dataset.compute().dice[1] == pytest.approx(8 / 9)  # pooled: TP4 FP0 FN1


def test_all_classes_with_the_default_exclude_rule():
    acc = PerImageDice(2)
    acc.update(PRED, TARGET, ids=["A", "B"])
    r = acc.compute()
    # A: background absent from both -> NaN (left out); foreground 1.
    # B: background TP3 FP1 FN0 -> 6/7; foreground 0.
    assert math.isnan(r.dice[0, 0].item())
    assert r.dice[0, 1].item() == 1.0
    assert r.dice[1].tolist() == pytest.approx([6 / 7, 0.0])
    assert r.per_image.tolist() == pytest.approx([1.0, 3 / 7])
    assert r.mean == pytest.approx(5 / 7)
    assert r.per_class_mean.tolist() == pytest.approx([6 / 7, 0.5])
    assert r.ids == ("A", "B") and r.classes == (0, 1)


def test_empty_rule_exclude_versus_one():
    # C: an empty image where the model correctly predicts nothing; D: a false positive
    target = torch.zeros(2, 1, 4, dtype=torch.long)
    pred = torch.tensor([[[0, 0, 0, 0]], [[0, 1, 0, 0]]])
    exclude = PerImageDice(2, classes=[1])
    exclude.update(pred, target, ids=["C", "D"])
    r = exclude.compute()
    assert math.isnan(r.per_image[0].item()) and r.per_image[1].item() == 0.0
    assert r.mean == 0.0  # C left out
    one = PerImageDice(2, classes=[1], empty="one")
    one.update(pred, target, ids=["C", "D"])
    r = one.compute()
    assert r.per_image.tolist() == [1.0, 0.0]
    assert r.mean == 0.5
    assert one.empty is MetricEmptyRule.ONE


def test_image_with_every_pixel_ignored_is_nan_under_both_rules():
    target = torch.tensor([[[255, 255]], [[1, 0]]])
    pred = torch.tensor([[[1, 1]], [[1, 0]]])
    for rule in MetricEmptyRule:
        acc = PerImageDice(2, ignore_index=255, empty=rule)
        acc.update(pred, target, ids=["void", "ok"])
        r = acc.compute()
        assert torch.isnan(r.dice[0]).all()
        assert math.isnan(r.per_image[0].item()) and r.per_image[1].item() == 1.0
        assert r.mean == 1.0
        assert r.worst(5) == [("ok", 1.0)]


def test_worst_k_quantiles_and_to_dict():
    target = torch.ones(4, 1, 2, dtype=torch.long)
    pred = torch.tensor([[[1, 1]], [[1, 0]], [[0, 0]], [[1, 0]]])
    acc = PerImageDice(2, classes=[1])
    acc.update(pred, target, ids=["w", "x", "y", "z"])
    r = acc.compute()
    assert r.per_image.tolist() == pytest.approx([1.0, 2 / 3, 0.0, 2 / 3])
    assert r.worst(3) == [("y", 0.0), ("x", pytest.approx(2 / 3)), ("z", pytest.approx(2 / 3))]
    assert r.worst(0) == []
    assert len(r.worst(10)) == 4
    assert r.quantiles([0.0, 0.5, 1.0]) == pytest.approx([0.0, 2 / 3, 1.0])
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["ids"] == ["w", "x", "y", "z"]
    assert d["dice"][0] == [None, 1.0]  # background absent from both in image w
    assert d["mean"] == pytest.approx((1 + 2 / 3 + 0 + 2 / 3) / 4)
    with pytest.raises(ValueError, match=r"k=-1 is not valid"):
        r.worst(-1)
    with pytest.raises(ValueError, match=r"q=\[1.5\] is not valid"):
        r.quantiles([1.5])


def test_default_ids_merge_and_state_dict(tmp_path):
    a = PerImageDice(2)
    a.update(PRED, TARGET)
    assert a.compute().ids == ("#0", "#1")
    b = PerImageDice(2)
    b.update(PRED[:1], TARGET[:1], ids=["extra"])
    b.update(PRED[1:], TARGET[1:])  # unnamed images never clash
    assert a.merge(b) is a
    assert len(a) == 4 and a.compute().ids == ("#0", "#1", "extra", "#3")
    torch.save(a.state_dict(), tmp_path / "s.pt")
    c = PerImageDice(2)
    c.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert c.compute().ids == a.compute().ids
    assert torch.equal(c.compute().dice.nan_to_num(-1), a.compute().dice.nan_to_num(-1))
    a.all_reduce()  # not distributed: no-op
    assert len(a) == 4
    a.reset()
    assert len(a) == 0 and math.isnan(a.compute().mean)


def test_bad_input():
    acc = PerImageDice(2)
    with pytest.raises(ValueError, match=r"ids=\['a'\] is not valid; expected 2 strings"):
        acc.update(PRED, TARGET, ids=["a"])
    with pytest.raises(ValueError, match=r"image ids \['a'\] are duplicated or already present"):
        acc.update(PRED, TARGET, ids=["a", "a"])
    acc.update(PRED, TARGET, ids=["a", "b"])
    with pytest.raises(ValueError, match=r"image ids \['b'\] are duplicated or already present"):
        acc.update(PRED[:1], TARGET[:1], ids=["b"])
    with pytest.raises(ValueError, match=r"pred has dtype torch.float32"):
        acc.update(PRED.float(), TARGET)
    with pytest.raises(ValueError, match=r"target contains the value 2"):
        acc.update(PRED, TARGET * 2)
    with pytest.raises(ValueError, match=r"empty='never' is not valid; expected one of"):
        PerImageDice(2, empty="never")
    with pytest.raises(ValueError, match=r"classes=\[2\] is not valid"):
        PerImageDice(2, classes=[2])
    with pytest.raises(ValueError, match=r"classes=\[\] is not valid"):
        PerImageDice(2, classes=[])
    with pytest.raises(
        ValueError, match=r"other has \(num_classes, ignore_index, empty, classes\)"
    ):
        PerImageDice(2).merge(PerImageDice(3))
    with pytest.raises(ValueError, match=r"other has"):
        PerImageDice(2).merge(PerImageDice(2, empty="one"))
    with pytest.raises(ValueError, match=r"other is a ConfusionMatrix; expected a PerImageDice"):
        PerImageDice(2).merge(ConfusionMatrix(2))
    state = acc.state_dict()
    with pytest.raises(ValueError, match=r"state\['counts'\]=\(2, 2, 3\) is not valid"):
        PerImageDice(2).load_state_dict({**state, "ids": ["a"]})
