"""COCO crowd regions (``iscrowd: 1``) are scored as pycocotools scores them.

Hand-computed values for the DSB score and PQ, and the COCO AP of segwise's whole chain (COCO
file -> dataset item -> InstanceMetrics) against pycocotools' COCOeval on the same file.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from segwise.instance.representation import InstancePrediction
from segwise.metrics.instance import (
    CrowdRegions,
    InstanceMetrics,
    average_precision,
    dsb_score,
    panoptic_counts,
    panoptic_quality,
    split_crowd,
)

pytest.importorskip("pycocotools")

H, W = 48, 64


def _map(*boxes):
    """An instance map with instance ``i + 1`` filling ``boxes[i] = (y0, y1, x0, x1)``."""
    out = np.zeros((H, W), np.int64)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        out[y0:y1, x0:x1] = i + 1
    return out


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


# one object (rows 0-9, cols 0-9), one crowd region (rows 20-39, cols 20-39)
GT = _map((0, 10, 0, 10))
CROWD = _box(20, 40, 20, 40)[None]
# pred 1 = the object; pred 2 wholly inside the crowd; pred 3: 60 of its 100 pixels inside
PRED = _map((0, 10, 0, 10), (25, 30, 25, 30), (30, 40, 34, 44))


def test_dsb_score_with_crowd_by_hand():
    m = InstanceMetrics()
    m.update(PRED, GT, crowd=CROWD)
    r = m.compute()
    # t = 0.50, 0.55: preds 2 (share 1.0) and 3 (share 0.6 > t) are ignored -> 1 / (1+1-1) = 1
    # t >= 0.60: pred 3 (0.6, not > t) is a FP -> 1 / (1 + 2 - 1) = 0.5
    expected = [1.0, 1.0] + [0.5] * 8
    assert [v for _, v in r.ap_per_threshold] == pytest.approx(expected)
    assert r.dsb_score == pytest.approx(0.6)
    assert (r.precision50, r.recall50) == (1.0, 1.0)
    assert average_precision(PRED, GT, crowd=CROWD).tolist() == pytest.approx(expected)
    assert dsb_score(PRED, GT, crowd=CROWD) == pytest.approx(0.6)
    # without the crowd region: two FPs at every threshold -> 1/3; the region is no FN
    plain = InstanceMetrics()
    plain.update(PRED, GT)
    assert plain.compute().dsb_score == pytest.approx(1 / 3)


def test_pq_crowd_union_of_the_prediction_class_by_hand():
    pred = InstancePrediction.from_label_map(PRED, labels=[1, 1, 2])
    gt = InstancePrediction.from_label_map(GT, labels=[1])
    # crowd of class 1: pred 2 (class 1, wholly inside) is no FP; pred 3 is class 2 -> FP
    c = panoptic_counts(pred, gt, crowd=CrowdRegions(CROWD, [1]))
    assert (c.tp, c.fp, c.fn) == ({1: 1, 2: 0}, {1: 0, 2: 1}, {1: 0, 2: 0})
    q = panoptic_quality(c)
    assert q["per_class"][1]["pq"] == 1.0 and q["per_class"][2]["pq"] == 0.0
    # crowd of class 2: pred 3 (60 % inside, > 0.5) is no FP; pred 2 (class 1) is a FP
    c = panoptic_counts(pred, gt, crowd=CrowdRegions(CROWD, [2]))
    assert (c.fp[1], c.fp[2]) == (1, 0)


def test_split_crowd_and_twice_refused():
    masks = np.stack([_box(0, 10, 0, 10), CROWD[0]]).astype(np.uint8)
    inst = {"masks": masks, "labels": np.array([1, 2]), "ids": np.array([7, 8]),
            "crowd": np.array([False, True])}
    objects, crowd = split_crowd(inst)
    assert objects["ids"].tolist() == [7] and "crowd" not in objects
    assert crowd.labels.tolist() == [2] and crowd.masks.sum() == 400
    assert split_crowd({**inst, "crowd": np.array([False, False])})[1] is None
    with pytest.raises(ValueError, match="crowd regions given twice"):
        InstanceMetrics().update(PRED, inst, crowd=CROWD)


# --- the whole chain against pycocotools ------------------------------------------------------
def _rle(mask):
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _coco_dataset(root):
    """Three images with objects of two categories and crowd regions (some overlapping an
    object, one image without any); returns the objects and regions per image."""
    from PIL import Image

    rng = np.random.default_rng(0)
    objects = {
        "a.png": [((2, 12, 2, 14), 1), ((20, 30, 5, 15), 2), ((5, 15, 40, 52), 1)],
        "b.png": [((30, 44, 30, 46), 2), ((3, 9, 3, 9), 1)],
        "c.png": [((10, 20, 10, 24), 1), ((12, 48, 28, 64), 1)],  # 1296 px: medium
    }
    crowds = {"a.png": [((25, 45, 30, 60), 1)], "b.png": [((0, 20, 20, 60), 1),
                                                          ((25, 46, 25, 50), 2)]}
    images, anns = [], []
    for image_id, name in enumerate(sorted(objects), start=1):
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
            root / "images" / name)
        images.append({"id": image_id, "file_name": name, "height": H, "width": W})
        for crowd, items in ((0, objects[name]), (1, crowds.get(name, []))):
            for box, cat in items:
                m = _box(*box)
                y0, y1, x0, x1 = box
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                             "iscrowd": crowd, "segmentation": _rle(m), "area": int(m.sum()),
                             "bbox": [x0, y0, x1 - x0, y1 - y0]})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "debris"}]}
    (root / "annotations.json").write_text(json.dumps(coco))
    (root / "splits.json").write_text(json.dumps({"train": ["a"], "val": ["b", "c"]}))
    return objects, crowds


def _items(root):
    from segwise.data import SegmentationDataset, discover_dataset

    index = discover_dataset(root)
    ds = SegmentationDataset(index.samples, index.info, instances=True)
    return {index.samples[i].image_path.name: ds[i] for i in range(len(ds))}


def _cocoeval(root, detections):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "annotations.json"))
        ids = {im["file_name"]: im["id"] for im in gt.dataset["images"]}
        dets = [{"image_id": ids[name], "category_id": cat, "segmentation": rle,
                 "score": score} for name, rows in detections.items()
                for rle, cat, score in rows]
        ev = COCOeval(gt, gt.loadRes(dets), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[:6]


def _segwise(items, preds):
    m = InstanceMetrics(coco=True)
    for name, item in items.items():
        m.update(preds[name], item["instances"])
    return m.compute()


def _as_detections(preds):
    return {name: [(r, int(c), float(s)) for r, c, s in
                   zip(p.to_rle(), p.labels, p.scores, strict=True)]
            for name, p in preds.items()}


def test_perfect_detector_coco_ap_is_one_as_pycocotools(tmp_path):
    objects, _ = _coco_dataset(tmp_path)
    items = _items(tmp_path)
    preds = {name: InstancePrediction.from_label_map(
        _map(*(b for b, _ in objects[name])), labels=[c for _, c in objects[name]])
        for name in objects}
    ref = _cocoeval(tmp_path, _as_detections(preds))
    assert ref[0] == pytest.approx(1.0)
    old = InstanceMetrics(coco=True)  # what segwise did: crowd regions as ordinary objects
    for name, item in items.items():
        inst = {k: v for k, v in item["instances"].items() if k != "crowd"}
        old.update(preds[name], InstancePrediction.from_target(inst))
    was = old.compute()  # 3 crowd regions counted as missed objects
    assert was.coco["ap"] == pytest.approx(0.688, abs=1e-3) and was.dsb_score == 0.75
    ours = _segwise(items, preds)
    assert ours.coco["ap"] == pytest.approx(1.0) and ours.coco["ap50"] == pytest.approx(1.0)
    assert ours.dsb_score == pytest.approx(1.0) and ours.pq == pytest.approx(1.0)
    assert (ours.recall50, ours.precision50) == (1.0, 1.0)


def test_noisy_detector_matches_cocoeval(tmp_path):
    objects, crowds = _coco_dataset(tmp_path)
    items = _items(tmp_path)
    rng = np.random.default_rng(3)
    preds = {}
    for name in objects:
        boxes, labels = [], []
        for (y0, y1, x0, x1), c in objects[name]:
            dy, dx = rng.integers(-1, 2, 2)  # shifted and resized copies of the objects
            boxes.append((max(y0 + dy, 0), y1 + dy + int(rng.integers(-1, 2)),
                          max(x0 + dx, 0), x1 + dx))
            labels.append(c if rng.random() > 0.1 else 3 - c)
        for (y0, y1, x0, x1), c in crowds.get(name, []):  # detections inside crowd regions
            boxes.append((y0 + 1, y0 + 6, x0 + 1, x0 + 7))
            labels.append(c)
            boxes.append((y1 - 4, y1 + 2, x1 - 8, x1 - 1))  # partly outside
            labels.append(c)
        boxes.append((44, 48, 0, 6))  # a false positive on background
        labels.append(1)
        scores = rng.random(len(boxes))
        preds[name] = InstancePrediction.from_label_map(
            _map(*boxes), labels=labels, scores=scores)
    ref = _cocoeval(tmp_path, _as_detections(preds))
    ours = _segwise(items, preds)
    keys = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
    got = [ours.coco[k] for k in keys]
    want = [np.nan if v == -1 else v for v in ref]
    assert 0.2 < want[0] < 0.95  # a noisy detector: neither perfect nor useless
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_crowd_survives_state_dict_json_and_merge():
    pred = InstancePrediction.from_label_map(PRED, scores=[0.9, 0.8, 0.7])
    whole = InstanceMetrics(coco=True)
    whole.update([pred, pred], [GT, GT], crowd=[CROWD, None])
    a, b = InstanceMetrics(coco=True), InstanceMetrics(coco=True)
    a.update(pred, GT, crowd=CROWD)
    b.update(pred, GT)
    b.load_state_dict(json.loads(json.dumps(b.state_dict())))  # builtins only
    merged = a.merge(b).compute()
    want = whole.compute()
    assert merged.dsb_score == pytest.approx(want.dsb_score)
    assert merged.coco == pytest.approx(want.coco, nan_ok=True)
    # image 1: 0.6 (crowd); image 2: no crowd region, two FPs at every threshold: 1/3
    assert want.dsb_score == pytest.approx((0.6 + 1 / 3) / 2)
