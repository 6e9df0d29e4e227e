"""Integration with the real datasets in ../shared/data (a few files, linked not copied)."""

from __future__ import annotations

import json

import pytest
import torch

from segwise.data import (
    MaskKind,
    SegmentationDataset,
    discover_dataset,
    inspect_dataset,
    train_transforms,
)
from segwise.enums import Task

pytestmark = pytest.mark.shared_data


def _link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)


def test_dsb2018_instances_binary(shared_data, tmp_path):
    src = shared_data / "dsb2018"
    splits = json.loads((src / "splits.json").read_text())
    ids = splits["train"][:3] + splits["val"][:1]
    root = tmp_path / "dsb"
    for sid in ids:
        _link(src / "images" / f"{sid}.png", root / "images" / f"{sid}.png")
        _link(src / "instances" / f"{sid}.png", root / "instances" / f"{sid}.png")
    (root / "splits.json").write_text(json.dumps({"train": ids[:3], "val": ids[3:]}))
    report = inspect_dataset(root)
    report.raise_if_fatal()
    info = report.index.info
    assert info.mask_kind == MaskKind.INSTANCE and info.labels.task == Task.BINARY
    assert info.labels.num_classes == 2 and info.in_channels == 3
    ds = SegmentationDataset(report.index.train, info, instances=True,
                             transform=train_transforms(info, crop_size=128))
    item = ds[0]
    assert item["image"].shape == (3, 128, 128) and item["mask"].shape == (128, 128)
    inst = item["instances"]
    assert inst["masks"].shape[0] == len(inst["ids"]) == len(inst["boxes"]) > 0
    fg = item["mask"] == 1
    assert torch.equal(fg, inst["masks"].bool().any(0))  # semantic = union of instances


def test_camvid_known_layout(shared_data, tmp_path):
    src = shared_data / "camvid"
    root = tmp_path / "camvid"
    for part in ("train", "val"):
        names = (src / f"{part}.txt").read_text().split()[:2]
        for name in names:
            name = name.split("/")[-1]
            _link(src / part / name, root / part / name)
            _link(src / f"{part}annot" / name, root / f"{part}annot" / name)
    index = discover_dataset(root)
    info = index.info
    labels = info.labels
    assert (labels.num_classes, labels.ignore_index, labels.names[0]) == (11, 11, "Sky")
    assert info.mask_kind == MaskKind.INDEX and index.split_source == "folders"
    assert len(index.train) == 2 and len(index.val) == 2
    item = SegmentationDataset(index.val, info)[0]
    assert item["image"].shape == (3, 360, 480)
    assert set(item["mask"].unique().tolist()) <= set(range(12))
