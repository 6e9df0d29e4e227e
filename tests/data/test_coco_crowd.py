"""COCO crowd regions (``iscrowd: 1``) in the data layer: flagged in the item, ignored (not
background) in the semantic mask, counted by ``data inspect``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segwise.data import SegmentationDataset, inspect_dataset

pytest.importorskip("pycocotools")

H, W = 16, 20


def _rle(mask):
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _write(root, files):
    """a.png: object (cell) rows 0-3 x cols 0-3; a crowd region rows 8-15 x cols 8-15 holding an
    object (debris) rows 10-11 x cols 10-11. b.png: one object, no crowd."""
    files.png(root / "images" / "a.png", files.rgb(H, W))
    files.png(root / "images" / "b.png", files.rgb(H, W, seed=1))

    def box(y0, y1, x0, x1):
        m = np.zeros((H, W), bool)
        m[y0:y1, x0:x1] = True
        return m

    anns = [(1, 1, box(0, 4, 0, 4), 0), (1, 1, box(8, 16, 8, 16), 1),
            (1, 2, box(10, 12, 10, 12), 0), (2, 1, box(2, 6, 2, 6), 0)]
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W},
                   {"id": 2, "file_name": "b.png", "height": H, "width": W}],
        "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "debris"}],
        "annotations": [{"id": 20 + i, "image_id": im, "category_id": cat, "iscrowd": crowd,
                         "segmentation": _rle(m), "area": int(m.sum()), "bbox": [0, 0, 1, 1]}
                        for i, (im, cat, m, crowd) in enumerate(anns)],
    }
    (root / "annotations.json").write_text(json.dumps(coco))
    (root / "splits.json").write_text(json.dumps({"train": ["a"], "val": ["b"]}))


def test_crowd_flagged_in_item_and_ignored_in_mask(tmp_path, files):
    _write(tmp_path, files)
    report = inspect_dataset(tmp_path)
    info = report.index.info
    assert info.labels.names == ("background", "cell", "debris") and info.labels.pad_value == 3
    item = SegmentationDataset(report.index.train, info, instances=True)[0]
    inst = item["instances"]
    assert inst["ids"].tolist() == [20, 21, 22] and inst["crowd"].tolist() == [False, True, False]
    assert inst["crowd"].dtype.is_floating_point is False
    mask = item["mask"]
    # crowd pixels not covered by an object: the pad label (ignored), not background (0)
    assert (mask[8:16, 8:16] == 3).sum().item() == 64 - 4
    assert (mask[10:12, 10:12] == 2).all()  # the object inside the crowd keeps its class
    assert (mask[0:4, 0:4] == 1).all() and mask[0, 10].item() == 0
    # the semantic-only item reads the same mask
    plain = SegmentationDataset(report.index.train, info)[0]["mask"]
    assert plain.equal(mask)
    # the pixel counts leave crowd pixels out of every class (were counted as "cell")
    assert info.class_pixel_counts == (2 * H * W - 16 - 64 - 16, 16 + 16, 4)


def test_crowd_flags_follow_the_instances_through_augmentation(tmp_path, files):
    from segwise.data import train_transforms

    _write(tmp_path, files)
    index = inspect_dataset(tmp_path).index
    ds = SegmentationDataset(index.train, index.info, instances=True,
                             transform=train_transforms(index.info, crop_size=(12, 12),
                                                        scale=(1.0, 1.0)))
    for _ in range(6):
        inst = ds[0]["instances"]
        assert len(inst["crowd"]) == len(inst["masks"]) == len(inst["ids"])
        assert inst["crowd"].tolist() == [i == 21 for i in inst["ids"].tolist()]


def test_inspect_reports_crowd_regions(tmp_path, files):
    _write(tmp_path, files)
    report = inspect_dataset(tmp_path)
    s = report.summary()["instances"]
    assert (s["total"], s["crowd"], s["images_with_crowd"]) == (3, 1, 1)  # crowd not an object
    assert report.instances_per_image == {"a": 2, "b": 1}
    assert report.crowd_per_image == {"a": 1}
    (note,) = [p for p in report.problems if p.code == "coco_crowd"]
    assert "1 crowd regions (iscrowd: 1) in 1 images" in note.message
