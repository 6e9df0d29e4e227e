"""Contract sweep over the mask-kind table (segwise.data.masks.MASK_KINDS): every kind is one
module implementing detect / classes / check / read, found by auto-detection, checked without
errors and read at the image's size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segwise.data import MaskKind, SegmentationDataset, discover_dataset
from segwise.data.info import Severity
from segwise.data.masks import MASK_KINDS, detect_kind, mask_kind_spec
from segwise.data.masks.base import InstanceKindSpec, MaskKindSpec

H, W = 8, 10


def _pairs(root, files, masks, sub="masks", ext=".png", write=None):
    for i, (sid, m) in enumerate(masks.items()):
        files.png(root / "images" / f"{sid}.png", files.rgb(H, W, seed=i))
        path = root / sub / f"{sid}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        (write or files.png)(path, m)
    (root / "splits.json").write_text(json.dumps({"train": ["a"], "val": ["b"]}))
    return root


def _binary(root, files):
    return _pairs(root, files, {"a": files.labels([0, 1]), "b": files.labels([1, 0])})


def _index(root, files):
    return _pairs(root, files, {"a": files.labels([0, 1, 2, 4]), "b": files.labels([3, 0])})


def _palette(root, files):
    colors = [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    return _pairs(root, files, {"a": files.labels([0, 1]), "b": files.labels([2, 0])},
                  write=lambda p, m: files.palette_png(p, m, colors))


def _color(root, files):
    colors = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    lut = np.array(colors, np.uint8)
    _pairs(root, files, {"a": lut[files.labels([0, 1, 2])], "b": lut[files.labels([2, 0])]})
    (root / "classes.json").write_text(json.dumps({"names": ["bg", "r", "b"],
                                                   "colors": colors}))
    return root


def _soft(root, files):
    m = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    return _pairs(root, files, {"a": m, "b": 1 - m}, ext=".npy",
                  write=lambda p, arr: np.save(p, arr))


def _instance(root, files):
    inst = files.labels([0, 1, 2], dtype=np.uint16)
    return _pairs(root, files, {"a": inst, "b": inst}, sub="instances")


def _coco(root, files):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils

    for i, sid in enumerate("ab"):
        files.png(root / "images" / f"{sid}.png", files.rgb(H, W, seed=i))
    m = np.zeros((H, W), np.uint8)
    m[1:5, 2:6] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode()
    coco = {"images": [{"id": k + 1, "file_name": f"{sid}.png", "height": H, "width": W}
                       for k, sid in enumerate("ab")],
            "categories": [{"id": 1, "name": "cell"}],
            "annotations": [{"id": k + 1, "image_id": k + 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": rle, "area": 16, "bbox": [2, 1, 4, 4]}
                            for k in range(2)]}
    (root / "annotations.json").write_text(json.dumps(coco))
    (root / "splits.json").write_text(json.dumps({"train": ["a"], "val": ["b"]}))
    return root


BUILDERS = {MaskKind.BINARY: _binary, MaskKind.INDEX: _index, MaskKind.PALETTE: _palette,
            MaskKind.COLOR: _color, MaskKind.SOFT: _soft, MaskKind.INSTANCE: _instance,
            MaskKind.COCO: _coco}


def test_the_table_holds_one_module_per_kind():
    kinds = [spec.kind for spec in MASK_KINDS]
    assert sorted(kinds) == sorted(k for k in MaskKind if k is not MaskKind.AUTO)
    assert len(set(kinds)) == len(kinds) and set(BUILDERS) == set(kinds)
    for spec in MASK_KINDS:
        assert isinstance(spec, MaskKindSpec) and mask_kind_spec(spec.kind) is spec
        assert spec.has_instances == isinstance(spec, InstanceKindSpec)
    assert [s.kind for s in MASK_KINDS if s.reads_lossy] == [MaskKind.BINARY]
    with pytest.raises(ValueError, match="mask_kind='auto' names no file format"):
        mask_kind_spec(MaskKind.AUTO)


def test_no_scan_and_no_layout_evidence():
    assert detect_kind("images+masks", [], None) is MaskKind.AUTO  # scan the masks first
    assert detect_kind("images+masks", [], []) is MaskKind.INDEX  # nothing scanned: index


@pytest.mark.parametrize("kind", list(BUILDERS), ids=lambda k: k.value)
def test_every_kind_is_detected_checked_and_read(tmp_path, files, kind):
    root = BUILDERS[kind](tmp_path, files)
    index = discover_dataset(root, strict=False)
    info = index.info
    assert info.mask_kind is kind  # auto-detected
    assert not [p for p in index.problems if p.severity is Severity.ERROR]
    spec = mask_kind_spec(kind)
    labels = info.labels  # readers take the label space itself (classes, ignore, pad)
    ds = SegmentationDataset(index.samples, info, instances=spec.has_instances)
    for i, s in enumerate(index.samples):
        mask = spec.read(s.mask_path, labels, image_name=s.image_path.name)
        assert mask.shape[-2:] == (H, W)
        assert mask.dtype == (np.float32 if kind is MaskKind.SOFT else np.int64)
        assert np.array_equal(ds[i]["mask"].numpy(), mask)
        if spec.has_instances:
            inst, semantic = spec.read_instances(s.mask_path, labels,
                                                 image_name=s.image_path.name)
            assert np.array_equal(semantic, mask) and inst["masks"].shape[1:] == (H, W)
    if kind is not MaskKind.SOFT:  # the check pass counted every pixel of every mask
        assert sum(info.class_pixel_counts) == 2 * H * W
