"""One instance evaluation loop: training validation and ``segwise evaluate`` score a COCO
dataset with crowd regions (``iscrowd: 1``) the same way, so the score that picks ``best.pt``
is the score ``segwise evaluate`` reports for it; crowd regions are never objects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segwise.cli.main import main

pytest.importorskip("pycocotools")

H = W = 48


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _rle(mask):
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


# (image, annotation id, mask, iscrowd): in every image two bright squares; in the validation
# image "f" one crowd region covers the whole image, listed between its two objects. Read as an
# object (ids in order, the earlier mask winning a pixel) the region would take the second
# object's pixels: the ground truth would be {60, 61} instead of {60, 62}, and the score of
# any prediction would change (a model that finds both squares: 1 -> 1/3; an untrained one
# that paints one blob over the image: 0 -> 0.5)
_ANNOTATIONS = [
    *((name, 10 * (i + 1) + k, _box(4 + 20 * k, 14 + 20 * k, 4 + 22 * k, 14 + 22 * k), 0)
      for i, name in enumerate("abcde") for k in (0, 1)),
    ("f", 60, _box(4, 14, 4, 14), 0),
    ("f", 61, _box(0, H, 0, W), 1),
    ("f", 62, _box(28, 36, 28, 36), 0),
]


@pytest.fixture(scope="module")
def coco_with_crowd(tmp_path_factory):
    """6 images of 48x48 (train a-d, val e-f) with COCO RLE annotations, one class."""
    root = tmp_path_factory.mktemp("coco_crowd")
    names = sorted({a[0] for a in _ANNOTATIONS})
    rng = np.random.default_rng(0)
    for name in names:
        image = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
        for owner, _, mask, crowd in _ANNOTATIONS:
            if owner == name and not crowd:
                image[mask] = 220
        (root / "images").mkdir(exist_ok=True)
        Image.fromarray(image).save(root / "images" / f"{name}.png")
    coco = {
        "images": [{"id": i + 1, "file_name": f"{n}.png", "height": H, "width": W}
                   for i, n in enumerate(names)],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": [{"id": ann, "image_id": names.index(name) + 1, "category_id": 1,
                         "iscrowd": crowd, "segmentation": _rle(mask),
                         "area": int(mask.sum()), "bbox": [0, 0, 1, 1]}
                        for name, ann, mask, crowd in _ANNOTATIONS],
    }
    (root / "annotations.json").write_text(json.dumps(coco))
    (root / "splits.json").write_text(json.dumps({"train": list("abcd"), "val": list("ef")}))
    return root


def test_from_target_gives_the_non_crowd_objects_only(coco_with_crowd):
    from segwise.data import InstanceDataset, discover_dataset
    from segwise.instance import InstancePrediction

    index = discover_dataset(coco_with_crowd)
    items = {item["id"]: item for item in InstanceDataset(index.val, index.info)}
    f = items["f"]["instances"]
    assert f["ids"].tolist() == [60, 61, 62] and f["crowd"].tolist() == [False, True, False]
    objects = InstancePrediction.from_target(f)
    assert objects.ids.tolist() == [60, 62]  # the object inside the crowd region kept whole
    assert (objects.instance_map == 60).sum() == 10 * 10
    assert (objects.instance_map == 62).sum() == 8 * 8
    assert objects.instance_map.astype(bool).sum() == 10 * 10 + 8 * 8  # the region: no object


@pytest.mark.slow
def test_best_pt_is_picked_by_the_score_evaluate_reports(coco_with_crowd, tmp_path, capsys):
    from segwise.runs.checkpoint import load_checkpoint

    run = tmp_path / "run"
    assert main(["train", "--task", "instance", "--model", "unet_watershed", "--encoder",
                 "resnet18", "--data", str(coco_with_crowd), "--out", str(run), "--device",
                 "cpu", "--batch-size", "2", "--crop-size", "48", "--workers", "0",
                 "--epochs", "1", "--max-steps-per-epoch", "1", "--quiet"]) == 0
    validated = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert load_checkpoint(run / "last.pt")["training"]["best_score"] == \
        validated["val_dsb_score"]
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data",
                 str(coco_with_crowd), "--out", str(tmp_path / "eval"), "--json",
                 "--device", "cpu"]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported["images"] == 2
    f = next(row for row in reported["per_image"] if row["id"] == "f")
    assert f["ground_truth"] == 2  # the crowd region is no object
    for name in ("dsb_score", "ap50", "pq", "sq", "rq", "f1_50"):
        assert reported["summary"][name] == pytest.approx(validated[f"val_{name}"], abs=1e-12,
                                                          nan_ok=True), name


def test_validation_leaves_the_crowd_region_out_of_the_objects(coco_with_crowd, monkeypatch):
    """InstanceAdapter.validate on a model that finds exactly the objects: every image scores
    1 (read as an object, the crowd region would cost "f" 2/3 of its score)."""
    import torch

    from segwise.data import InstanceDataset, discover_dataset, eval_transforms
    from segwise.engine import instance_adapter
    from segwise.engine.config import config_from_dict
    from segwise.engine.registry import make_adapter
    from segwise.instance import InstancePrediction

    index = discover_dataset(coco_with_crowd)
    config = config_from_dict({
        "model": {"name": "unet_watershed", "encoder": "resnet18"},
        "data": {"root": str(coco_with_crowd), "crop_size": 48, "batch_size": 2, "workers": 0},
        "train": {"task": "instance", "epochs": 1, "device": "cpu"},
    })
    adapter = make_adapter(config, index.info, device=torch.device("cpu"), amp_dtype=None,
                           channels_last=False, index=index)
    val = InstanceDataset(index.val, index.info, transform=eval_transforms(index.info))
    truth = {}
    for item in val:
        inst = item["instances"]
        keep = ~inst["crowd"].bool()
        truth[item["image"].numpy().tobytes()] = InstancePrediction.from_masks(
            inst["masks"][keep].bool(), labels=inst["labels"][keep])
    monkeypatch.setattr(instance_adapter, "predict_image",
                        lambda model, image, **_: truth[image.numpy().tobytes()])
    result = adapter.validate(torch.nn.Identity(), val, indices=[0, 1], distributed=False,
                              keep_overlays=1)
    assert result.summary["dsb_score"] == 1.0 and result.summary["ap50"] == 1.0
    census = result.census
    assert census["objects_per_image"] == census["true_objects_per_image"] == [2, 2]
    # (background, object) pixels; the crowd region is no prediction but counts as an object
    assert sum(census["pixels_per_class"]) == sum(census["true_pixels_per_class"])
    assert census["pixels_per_class"][1] < census["true_pixels_per_class"][1]
    assert result.loss is None and [o[0] for o in result.overlays] == ["e"]
