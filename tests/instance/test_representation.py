"""InstancePrediction: construction, validation, conversions (RLE, panoptic, masks, Mask R-CNN)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segwise.instance.representation import InstancePrediction, boxes_from_label_map

from .conftest import rect_map


def test_from_label_map_basic_fields():
    inst = rect_map((6, 8), [(7, 0, 0, 2, 3), (3, 3, 4, 3, 4)])
    pred = InstancePrediction.from_label_map(inst, labels={3: 2, 7: 1})
    assert pred.ids.tolist() == [3, 7]  # sorted, original IDs kept
    assert pred.labels.tolist() == [2, 1]
    assert pred.scores.tolist() == [1.0, 1.0]
    # pixel-edge boxes: x2 = last column + 1
    assert pred.boxes.tolist() == [[4, 3, 8, 6], [0, 0, 3, 2]]
    assert pred.areas.tolist() == [12, 6]
    assert pred.class_map[4, 5] == 2 and pred.class_map[0, 0] == 1 and pred.class_map[2, 0] == 0
    assert pred.masks().shape == (2, 6, 8)
    records = pred.instances()
    assert [r.area for r in records] == [12, 6]
    assert records[1].box == (0.0, 0.0, 3.0, 2.0)
    assert pred.instance_map.dtype == np.int32 and pred.class_map.dtype == np.int64
    with pytest.raises(ValueError):
        pred.instance_map[0, 0] = 5  # read-only


def test_labels_by_majority_of_class_map():
    inst = rect_map((4, 4), [(1, 0, 0, 2, 4), (2, 2, 0, 2, 4)])
    cls = np.zeros((4, 4), int)
    cls[0, :3] = 5  # 3 of 8 pixels of instance 1 are class 5, the rest 0 -> 5 wins (0 ignored)
    cls[2:, :] = 2
    cls[3, 0] = 4
    pred = InstancePrediction.from_label_map(inst, class_map=cls)
    assert pred.labels.tolist() == [5, 2]


def test_from_masks_resolves_overlaps_by_score():
    masks = np.zeros((3, 5, 5), dtype=np.float32)
    masks[0, 0:3, 0:3] = 0.9  # low score
    masks[1, 1:4, 1:4] = 0.8  # high score: wins the overlap
    masks[2, 4, 4] = 0.4  # below mask threshold 0.5: no pixel -> dropped
    pred = InstancePrediction.from_masks(masks, labels=[1, 2, 1], scores=[0.3, 0.9, 0.95])
    assert pred.ids.tolist() == [1, 2]  # 1 = highest surviving score
    assert pred.scores.tolist() == pytest.approx([0.9, 0.3])
    assert pred.labels.tolist() == [2, 1]
    assert (pred.instance_map[1:4, 1:4] == 1).all()
    assert pred.areas.tolist() == [9, 9 - 4]


def test_from_maskrcnn_output_thresholds():
    masks = torch.zeros(3, 1, 6, 6)
    masks[0, 0, :3, :3] = 0.7
    masks[1, 0, 3:, 3:] = 0.5  # exactly 0.5 is not > 0.5: empty -> dropped
    masks[2, 0, :2, 4:] = 1.0  # score 0.2 < score_threshold
    out = {
        "masks": masks,
        "labels": torch.tensor([3, 1, 2]),
        "scores": torch.tensor([0.8, 0.9, 0.2]),
        "boxes": torch.zeros(3, 4),
    }
    pred = InstancePrediction.from_maskrcnn_output(out, score_threshold=0.5)
    assert len(pred) == 1
    assert pred.labels.tolist() == [3]
    assert pred.boxes.tolist() == [[0, 0, 3, 3]]
    with pytest.raises(ValueError, match="lacks 'scores'"):
        InstancePrediction.from_maskrcnn_output({"masks": masks, "labels": out["labels"]})


def test_rle_round_trip():
    inst = rect_map((9, 7), [(1, 0, 0, 3, 3), (2, 5, 2, 4, 5), (3, 0, 4, 2, 3)])
    pred = InstancePrediction.from_label_map(inst, labels=[1, 2, 1], scores=[0.5, 0.7, 0.9])
    rles = pred.to_rle()
    assert all(isinstance(r["counts"], str) and r["size"] == [9, 7] for r in rles)
    back = InstancePrediction.from_rle(rles, labels=pred.labels, scores=pred.scores)
    # from_rle renumbers by score (1 = best): the partition and per-instance data survive
    assert set(map(tuple, back.boxes.tolist())) == set(map(tuple, pred.boxes.tolist()))
    assert np.array_equal(back.instance_map > 0, inst > 0)
    assert np.array_equal(back.class_map, pred.class_map)
    assert len(InstancePrediction.from_rle([], shape=(3, 4))) == 0
    with pytest.raises(ValueError, match="shape"):
        InstancePrediction.from_rle([])


def test_panoptic_round_trip_and_convention():
    inst = rect_map((4, 6), [(1, 0, 0, 2, 2), (2, 2, 3, 2, 3)])
    pred = InstancePrediction.from_label_map(inst, labels=[4, 1])
    pan = pred.to_panoptic(label_divisor=1000)
    assert pan[0, 0] == 4 * 1000 + 1 and pan[3, 5] == 1 * 1000 + 2 and pan[0, 5] == 0
    back = InstancePrediction.from_panoptic(pan, label_divisor=1000)
    assert np.array_equal(back.class_map, pred.class_map)
    assert np.array_equal(back.instance_map > 0, inst > 0)
    with pytest.raises(ValueError, match="label_divisor=2"):
        pred.to_panoptic(label_divisor=2)


def test_coco_results_and_target_dict():
    inst = rect_map((5, 5), [(1, 1, 1, 2, 3)])
    pred = InstancePrediction.from_label_map(inst, labels=[2], scores=[0.25])
    (res,) = pred.to_coco_results(image_id=7)
    assert res["image_id"] == 7 and res["category_id"] == 2 and res["score"] == 0.25
    assert res["bbox"] == [1.0, 1.0, 3.0, 2.0] and res["area"] == 6
    target = pred.to_target()
    assert target["masks"].dtype == np.uint8 and target["masks"].shape == (1, 5, 5)
    assert target["labels"].tolist() == [2] and target["ids"].tolist() == [1]


def test_relabel_and_empty():
    inst = rect_map((3, 3), [(40, 0, 0, 1, 1), (9, 2, 2, 1, 1)])
    pred = InstancePrediction.from_label_map(inst, labels=[1, 2]).relabel()
    assert pred.ids.tolist() == [1, 2] and pred.instance_map[2, 2] == 1
    assert pred.labels.tolist() == [1, 2]
    empty = InstancePrediction.empty((2, 3))
    assert len(empty) == 0 and empty.shape == (2, 3) and empty.masks().shape == (0, 2, 3)
    assert empty.to_rle() == [] and empty.boxes.shape == (0, 4)


def test_boxes_from_label_map_matches_loop():
    rng = np.random.default_rng(0)
    inst = rng.integers(0, 6, size=(13, 11))
    ids = np.unique(inst)[1:]
    boxes = boxes_from_label_map(inst, ids)
    for i, b in zip(ids, boxes, strict=True):
        ys, xs = np.nonzero(inst == i)
        assert b.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]



def test_the_torch_and_numpy_boxes_of_masks_agree():
    """One boxes-from-masks per array library: torch (mask stacks, `segwise.data.boxes`) and
    numpy (label maps, `boxes_from_label_map`) give the same pixel-edge boxes."""
    import torch

    from segwise.data.boxes import boxes_from_masks

    rng = np.random.default_rng(1)
    inst = rng.integers(0, 7, size=(17, 9)) * (rng.random((17, 9)) < 0.4)
    ids = np.arange(1, 9)  # 7 and 8 have no pixel: zero boxes in both
    stack = torch.from_numpy(inst[None] == ids[:, None, None])
    for masks in (stack, stack.to(torch.uint8), stack.float()):
        assert boxes_from_masks(masks).tolist() == boxes_from_label_map(inst, ids).tolist()
    assert boxes_from_masks(torch.zeros(0, 4, 5)).shape == (0, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"instance_map": np.zeros((2, 2, 2), int)}, "instance_map has shape"),
        ({"instance_map": np.full((2, 2), -1)}, "negative ID"),
        ({"instance_map": np.ones((2, 2), int), "labels": [0]}, "labels"),
        ({"instance_map": np.ones((2, 2), int), "labels": [1, 2]}, r"labels has shape \(2,\)"),
        ({"instance_map": np.ones((2, 2), int), "scores": [1.5]}, "scores="),
        (
            {"instance_map": np.ones((2, 2), int), "labels": {5: 1}},
            r"no entry for instance IDs \[1\]",
        ),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    inst = kwargs.pop("instance_map")
    with pytest.raises(ValueError, match=match):
        InstancePrediction.from_label_map(inst, **kwargs)


def test_direct_construction_is_validated():
    inst = np.array([[0, 1], [1, 0]], dtype=np.int32)
    good = InstancePrediction.from_label_map(inst)
    with pytest.raises(ValueError, match="do not match"):
        InstancePrediction(
            inst, good.class_map, np.array([2]), good.labels, good.scores, good.boxes
        )
    with pytest.raises(ValueError, match="class_map disagrees"):
        InstancePrediction(inst, good.class_map * 3, good.ids, good.labels, good.scores, good.boxes)
    with pytest.raises(ValueError, match="mask_threshold"):
        InstancePrediction.from_masks(np.zeros((1, 2, 2)), mask_threshold=2.0)


def test_from_target_uses_item_ids_and_round_trips():
    inst = rect_map((6, 6), [(5, 0, 0, 2, 2), (9, 3, 3, 3, 3)])
    pred = InstancePrediction.from_label_map(inst, labels={5: 2, 9: 1})
    target = pred.to_target()
    back = InstancePrediction.from_target(
        {k: torch.from_numpy(v) for k, v in target.items()}  # tensors, as the dataset yields
    )
    assert np.array_equal(back.instance_map, inst) and back.labels.tolist() == [2, 1]
    # no ids: k + 1 in item order; overlapping masks: the earlier one wins
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[0, :2, :2] = 1
    masks[1, :3, :3] = 1
    no_ids = InstancePrediction.from_target({"masks": masks, "labels": [1, 3]})
    assert no_ids.instance_map[0, 0] == 1 and no_ids.instance_map[2, 2] == 2
    assert no_ids.labels.tolist() == [1, 3] and no_ids.areas.tolist() == [4, 5]
    with pytest.raises(ValueError, match="unique IDs"):
        InstancePrediction.from_target({"masks": masks, "labels": [1, 1], "ids": [2, 2]})
    with pytest.raises(ValueError, match="lacks 'labels'"):
        InstancePrediction.from_target({"masks": masks})


def test_huge_ids():
    inst = np.zeros((4, 4), dtype=np.int64)
    inst[:2, :2] = 2_000_000_000
    inst[3, 3] = 5
    pred = InstancePrediction.from_label_map(inst, labels={5: 1, 2_000_000_000: 2})
    assert pred.class_map[0, 0] == 2 and pred.class_map[3, 3] == 1
    assert pred.relabel().ids.tolist() == [1, 2]
