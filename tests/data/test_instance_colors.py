"""Issue 25, item 3: colour-coded instance masks (an RGB PNG, one colour per object, as many
annotation tools export) are read as instances, and `data inspect` and item loading agree on
every instance mask because one rule decides (:func:`segwise.data.instances.instance_label`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from segwise.data import SegmentationDataset, discover_dataset
from segwise.data.inspect import inspect_dataset

COLOURS = [(255, 0, 0), (0, 200, 0), (30, 60, 250)]


def _colour_instances(root: Path, *, sidecar: dict | None = None,
                      background=(0, 0, 0)) -> Path:
    """Layout (b): one 40 x 48 image, its RGB mask with three objects on ``background``."""
    (root / "images").mkdir(parents=True)
    (root / "instances").mkdir()
    for sid in ("x", "y"):
        Image.fromarray(np.random.default_rng(4).integers(0, 256, (40, 48, 3), np.uint8)).save(
            root / "images" / f"{sid}.png")
        m = np.zeros((40, 48, 3), np.uint8)
        m[:] = background
        m[2:10, 3:12] = COLOURS[0]
        m[15:30, 20:30] = COLOURS[1]
        m[32:38, 5:40] = COLOURS[2]
        Image.fromarray(m).save(root / "instances" / f"{sid}.png")
        if sidecar is not None:
            (root / "instances" / f"{sid}.json").write_text(json.dumps(sidecar))
    (root / "splits.json").write_text(json.dumps({"train": ["x"], "val": ["y"]}))
    return root


def _code(c) -> int:
    return (c[0] << 16) | (c[1] << 8) | c[2]


def test_an_rgb_instance_mask_of_three_objects_is_three_instances(tmp_path):
    root = _colour_instances(tmp_path / "data")
    report = inspect_dataset(root)
    assert not report.errors
    assert report.instances_per_image == {"x": 3, "y": 3}
    assert len([p for p in report.problems if p.code == "instance_colors"]) == 2
    index = report.index
    ds = SegmentationDataset(index.train, index.info, instances=True)
    item = ds[0]  # before: "mask is (48, 3) but image is (40, 48)"
    inst = item["instances"]
    assert tuple(item["mask"].shape) == (40, 48)
    assert inst["masks"].shape == (3, 40, 48)
    assert sorted(inst["ids"].tolist()) == sorted(_code(c) for c in COLOURS)
    assert sorted(inst["boxes"].tolist()) == sorted([[3, 2, 12, 10], [20, 15, 30, 30],
                                                     [5, 32, 40, 38]])
    assert int(item["mask"].sum()) == 8 * 9 + 15 * 10 + 6 * 35  # class 1 on every object


def test_a_colour_sidecar_gives_each_object_its_class(tmp_path):
    sidecar = {"#ff0000": 1, "#00c800": 2, "#1e3cfa": 2}
    root = _colour_instances(tmp_path / "data", sidecar=sidecar)
    (root / "classes.json").write_text(json.dumps({"names": ["background", "cell", "debris"]}))
    index = discover_dataset(root)
    item = SegmentationDataset(index.train, index.info, instances=True)[0]
    by_id = dict(zip(item["instances"]["ids"].tolist(), item["instances"]["labels"].tolist(),
                     strict=True))
    assert by_id == {_code(COLOURS[0]): 1, _code(COLOURS[1]): 2, _code(COLOURS[2]): 2}
    assert int(item["mask"][20, 25]) == 2 and int(item["mask"][5, 5]) == 1


def test_a_colour_mask_without_black_background_is_flagged(tmp_path):
    root = _colour_instances(tmp_path / "data", background=(255, 255, 255))
    report = inspect_dataset(root)
    warned = [p for p in report.problems if p.code == "instance_background"]
    assert len(warned) == 2 and "(255, 255, 255)" in warned[0].message


def test_inspect_and_item_loading_agree_on_every_instance_mask(tmp_path):
    """One rule decides: the objects inspect counts are the instances an item holds, for id
    images (uint16, grey saved as RGB) and colour-coded ones alike."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "instances").mkdir()
    rng = np.random.default_rng(5)
    masks = {
        "ids16": rng.integers(0, 5, (12, 14)).astype(np.uint16) * 1000,
        "grey_rgb": np.repeat(rng.integers(0, 4, (12, 14, 1)).astype(np.uint8) * 40, 3, -1),
        "colour": rng.integers(0, 3, (12, 14, 3)).astype(np.uint8) * 120,
    }
    for sid, m in masks.items():
        Image.fromarray(rng.integers(0, 256, (12, 14, 3), np.uint8)).save(
            root / "images" / f"{sid}.png")
        Image.fromarray(m).save(root / "instances" / f"{sid}.png")
    (root / "splits.json").write_text(json.dumps({"train": list(masks)[1:], "val": ["ids16"]}))
    report = inspect_dataset(root)
    ds = SegmentationDataset(report.index.samples, report.index.info, instances=True)
    for i, s in enumerate(ds.samples):
        assert len(ds[i]["instances"]["ids"]) == report.instances_per_image[s.id], s.id
