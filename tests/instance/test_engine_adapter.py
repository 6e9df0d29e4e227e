"""InstanceAdapter: item preparation, configuration errors, model rebuild, resume."""

from __future__ import annotations

import json

import pytest
import torch

from segwise.engine.config import config_from_dict
from segwise.instance.methods.unet_watershed import UNET_IGNORE


@pytest.fixture(scope="module")
def tiny_instance(tmp_path_factory):
    from segwise.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny_instance_engine")
    return write_synthetic_dataset(
        root / "data", flavour="instance", num_images=8, size=(48, 48), seed=3
    )


def _config(root, model, **options):
    return config_from_dict({
        "model": {"name": model, "encoder": "resnet18", "options": options},
        "data": {"root": str(root), "crop_size": 64, "batch_size": 2, "workers": 0,
                 "scale": [1.0, 1.0]},
        "optim": {"warmup_epochs": 0.5},
        "train": {"task": "instance", "epochs": 2, "device": "cpu", "overlays": 1,
                  "max_steps_per_epoch": 2},
    })


def _adapter(root, model, **options):
    from segwise.data import discover_dataset
    from segwise.engine.registry import make_adapter

    config = _config(root, model, **options)
    index = discover_dataset(root)
    return make_adapter(config, index.info, device=torch.device("cpu"), amp_dtype=None,
                        channels_last=False, index=index), config


def test_items_exclude_padding_from_instances_and_carry_unet_targets(tiny_instance):
    from segwise.data import discover_dataset

    adapter, config = _adapter(tiny_instance, "unet_watershed")
    train, _ = adapter.datasets(discover_dataset(tiny_instance), config.data)
    torch.manual_seed(0)
    item = train[0]  # 48x48 image padded to a 64x64 crop
    pad = item["mask"] == UNET_IGNORE
    assert pad.any()
    inst = item["instances"]
    assert set(inst["masks"].unique().tolist()) <= {0, 1}
    assert not (inst["masks"].bool() & pad).any()
    for mask, box in zip(inst["masks"], inst["boxes"], strict=True):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert set(item["mask"][~pad].unique().tolist()) <= {0, 1, 2}
    assert (item["mask"][~pad] > 0).sum() == inst["masks"].bool().any(0).sum()
    assert item["pixel_weights"].shape == (64, 64)
    assert (item["pixel_weights"][pad] == 0).all() and (item["pixel_weights"] >= 0).all()


def test_configuration_errors_name_the_fix(tiny_instance, tiny_semantic_root):
    with pytest.raises(ValueError, match="--model maskrcnn or --model unet_watershed"):
        _adapter(tiny_instance, "unet")
    with pytest.raises(ValueError, match="output_stride is not a maskrcnn option; allowed: "
                       "anchor_sizes, aspect_ratios"):
        _adapter(tiny_instance, "maskrcnn", output_stride=8)
    with pytest.raises(ValueError, match="w0 is not a maskrcnn option"):
        _adapter(tiny_instance, "maskrcnn", w0=3)
    with pytest.raises(ValueError, match="anchor_sizes=.*expected 5 sizes"):
        _adapter(tiny_instance, "maskrcnn", anchor_sizes=[8, 16])
    with pytest.raises(ValueError, match="min_area"):
        _adapter(tiny_instance, "unet_watershed", min_area=-1)
    with pytest.raises(ValueError, match="instance masks"):
        _adapter(tiny_semantic_root, "unet_watershed")


@pytest.fixture(scope="module")
def tiny_semantic_root(tmp_path_factory):
    from segwise.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny_semantic_engine")
    return write_synthetic_dataset(root / "data", flavour="binary", num_images=4, size=(32, 32))


def test_maskrcnn_model_args_rebuild_the_model(tiny_instance):
    from segwise.data import discover_dataset
    from segwise.instance.methods import measure_object_stats
    from segwise.instance.methods.maskrcnn.options import derive_anchors
    from segwise.runs.builders import build_model_from_args

    adapter, _ = _adapter(tiny_instance, "maskrcnn", score_threshold=0.3,
                          rpn_post_nms_top_n=[20, 20], fpn_channels=32)
    args = json.loads(json.dumps(adapter.model_args))  # builtins only: checkpoint-safe
    assert args["kind"] == "instance" and args["method"] == "maskrcnn"
    assert args["num_classes"] == 3  # disc, square, triangle
    assert args["options"]["score_threshold"] == 0.3
    # anchors come from the training objects, and the banner line says so
    index = discover_dataset(tiny_instance)
    stats = measure_object_stats(index.train, index.info, image_size=(64, 64))
    assert len(stats.sizes) == int(stats.objects_per_image.sum()) > 0
    sizes, ratios = derive_anchors(stats.sizes, stats.aspect_ratios)
    assert args["options"]["anchor_sizes"] == list(sizes)
    assert args["options"]["aspect_ratios"] == list(ratios)
    assert adapter.data_derived.startswith(f"anchors: sizes [{sizes[0]:g}, ")
    model = adapter.build_model(None)
    rebuilt = build_model_from_args(args)
    rebuilt.load_state_dict(model.state_dict())  # same architecture, strict
    assert rebuilt.rpn._post_nms_top_n["testing"] == 20
    assert rebuilt.rpn.anchor_generator.sizes == tuple((s,) for s in sizes)
    # user anchors win over the derived ones
    mine, _ = _adapter(tiny_instance, "maskrcnn", anchor_sizes=[4, 8, 16, 32, 64])
    assert mine.model_args["options"]["anchor_sizes"] == [4.0, 8.0, 16.0, 32.0, 64.0]
    assert mine.model_args["options"]["aspect_ratios"] == list(ratios)


@pytest.mark.slow
def test_unet_watershed_run_resumes_and_rebuilds(tiny_instance, tmp_path):
    from segwise.engine.trainer import fit
    from segwise.runs.checkpoint import load_run

    config = _config(tiny_instance, "unet_watershed", min_area=2)
    run = tmp_path / "run"
    first = fit(config, run, stop_after_epoch=1, quiet=True)
    assert len(first.history) == 1
    resumed = fit(None, run, resume=True, quiet=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert {"val_dsb_score", "val_ap50", "val_pq"} <= set(resumed.history[-1])
    loaded = load_run(run / "last.pt", device="cpu")
    assert loaded.model_args["method"] == "unet_watershed"
    assert loaded.model_args["options"]["min_area"] == 2
    assert loaded.config["train"]["task"] == "instance"
    assert loaded.model(torch.zeros(1, 3, 48, 48)).shape == (1, 3, 48, 48)
