"""`segwise export` of instance checkpoints: YOLACT / SOLOv2 with decoding in the graph, verified
against PyTorch; Mask R-CNN and U-Net + watershed refused before anything is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from segwise.cli.main import main
from segwise.data import DataInfo
from segwise.enums import Task
from segwise.inference.deploy import read_onnx_metadata
from segwise.inference.instance_export import default_max_instances, export_instance
from segwise.labels import LabelSpace
from segwise.runs.builders import build_model_from_args
from segwise.runs.checkpoint import save_checkpoint

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
# tiny heads; thresholds at 0 so an untrained model fills its output slots (real detections
# are compared, not only empty ones)
OPTIONS = {
    "yolact": {"fpn_channels": 16, "num_prototypes": 4, "anchor_sizes": [8, 12, 16, 24, 32],
               "top_k": 20, "score_threshold": 0.0},
    "solov2": {"fpn_channels": 16, "head_channels": 16, "stacked_convs": 1, "mask_channels": 8,
               "kernel_dims": 8, "category_threshold": 0.0, "score_threshold": 0.0,
               "grid_reference": 64},
    "maskrcnn": {},
    "unet_watershed": {},
}  # fmt: skip


def _info() -> DataInfo:
    return DataInfo(labels=LabelSpace(task=Task.BINARY, names=("background", "nucleus")),
                    in_channels=3, mask_kind="instance", mean=MEAN, std=STD)


def _checkpoint(tmp_path: Path, method: str) -> Path:
    """A checkpoint as `segwise train --task instance` writes it, with random weights."""
    args = {"kind": "instance", "method": method, "name": method, "encoder": "resnet18",
            "in_channels": 3, "num_classes": 1, "options": OPTIONS[method], "derived": ""}
    torch.manual_seed(0)
    model = build_model_from_args(args)
    return save_checkpoint(tmp_path / method / "best.pt", {
        "config": {"data": {"crop_size": 64}}, "data_info": _info().to_dict(),
        "model_args": args, "model": model.state_dict(),
    })


def _reference(checkpoint: Path, k: int):
    from segwise.inference.instance_export import instance_export_module
    from segwise.runs.checkpoint import load_run

    loaded = load_run(checkpoint, device="cpu")
    module, _ = instance_export_module(loaded.model, method=loaded.model_args["method"],
                                       options=loaded.model_args["options"], max_instances=k)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("method", ["yolact", "solov2"])
def test_cli_exports_onnx_with_decoding_verified_and_metadata(tmp_path, capsys, method):
    import onnxruntime as ort

    ckpt = _checkpoint(tmp_path, method)
    out = tmp_path / "out" / f"{method}.onnx"
    code = main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--max-instances", "6"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{method}, decoding included, 6 instance slots" in printed
    assert "64x64 and 97x131" in printed and "max abs diff" in printed
    compared = re.search(r"(\d+) detections compared", printed)
    assert compared and int(compared.group(1)) > 0 and "only empty" not in printed
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no partial file left

    meta = read_onnx_metadata(out)
    assert meta == {"kind": "instance", "in_channels": 3, "mean": list(MEAN), "std": list(STD),
                    "method": method, "max_instances": 6, "labels": _info().labels}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert json.loads(props["segwise.labels"])["names"] == ["background", "nucleus"]
    assert "labels" not in json.loads(props["segwise.data_info"])  # one label description
    assert not {"segwise.label_space", "segwise.task"} & set(props)
    assert json.loads(props["segwise.options"]) == OPTIONS[method]
    assert [o.name for o in session.get_outputs()] == ["scores", "labels", "masks"]

    # normalisation is in the graph: raw pixels in, the PyTorch decoding of normalised ones out
    module = _reference(ckpt, 6)
    raw = torch.rand(2, 3, 97, 131, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        scores, labels, masks = module((raw - torch.tensor(MEAN)[:, None, None])
                                       / torch.tensor(STD)[:, None, None])
    got = session.run(None, {"image": raw.numpy()})
    assert got[0].shape == (2, 6) and got[2].shape == (2, 6, 97, 131)
    assert (scores > 0).sum() >= 2  # real detections, not only empty slots
    np.testing.assert_allclose(got[0], scores.numpy(), atol=1e-4)
    np.testing.assert_array_equal(got[1], labels.numpy())
    np.testing.assert_allclose(got[2], masks.numpy(), atol=1e-3)

    # an existing file is never replaced without --overwrite
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_torchscript_export_verifies(tmp_path):
    ckpt = _checkpoint(tmp_path, "yolact")
    ts = tmp_path / "yolact.ts"
    args = ["export", "--checkpoint", str(ckpt), "--max-instances", "4"]
    assert main([*args, "--format", "torchscript", "--out", str(ts), "--no-normalization"]) == 0
    extra = {"segwise.json": ""}
    loaded = torch.jit.load(str(ts), _extra_files=extra)
    meta = json.loads(extra["segwise.json"])
    assert meta["segwise.kind"] == "instance" and meta["segwise.mean"] == "null"
    scores, labels, masks = loaded(torch.rand(1, 3, 50, 70))
    assert scores.shape == labels.shape == (1, 4) and masks.shape == (1, 4, 50, 70)


@pytest.mark.parametrize(("method", "words"), [
    ("maskrcnn", ["two stages", "data-dependent number of boxes"]),
    ("unet_watershed", ["watershed", "scikit-image", "decode_unet_logits"]),
])
def test_two_stage_and_watershed_are_refused_before_writing(tmp_path, capsys, method, words):
    ckpt = _checkpoint(tmp_path, method)
    out = tmp_path / "new" / "m.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert not out.parent.exists()  # nothing written, not even the folder


def test_instance_only_and_semantic_only_flags_are_refused(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, "unet_watershed")
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--head", "labels"]) == 2
    assert "--head does not apply to instance checkpoints" in capsys.readouterr().err
    assert not out.exists()


def test_default_slots_are_the_methods_own_cap():
    from segwise.instance.methods.maskrcnn import MaskRCNNOptions
    from segwise.instance.methods.solov2 import SOLOv2Options
    from segwise.instance.methods.yolact import YOLACTOptions

    assert default_max_instances(YOLACTOptions(max_detections=37)) == 37
    assert default_max_instances(SOLOv2Options(max_instances=12)) == 12
    assert default_max_instances(object()) == 100  # no cap field: the documented fallback
    assert default_max_instances(MaskRCNNOptions()) >= 1


def test_bad_max_instances_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"max_instances=0 .* int >= 1"):
        export_instance(torch.nn.Identity(), tmp_path / "m.onnx", method="yolact",
                        in_channels=3, max_instances=0)
    assert not (tmp_path / "m.onnx").exists()


# `segwise predict --onnx` of an instance export: tests/inference/test_onnx_instance.py

