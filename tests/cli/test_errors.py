"""Issue 15: errors are translated once, at the CLI edge (one line naming the value and the
fix; --debug shows the traceback); batch 1 on tiny maps is refused up front; docs agree with
the code on COCO maxDets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import segwise
from segwise.cli import export as export_verb
from segwise.cli.main import error_message, main
from segwise.engine.preflight import check_batch_statistics


def _raising(err: BaseException):
    def run(args):
        raise err
    return run


def test_library_errors_become_one_line(monkeypatch, capsys):
    bn = ValueError("Expected more than 1 value per channel when training, got input size "
                      "torch.Size([1, 512, 1, 1])")
    monkeypatch.setattr(export_verb, "run", _raising(bn))
    assert main(["export", "--checkpoint", "x.pt", "--out", "m.onnx"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("segwise export: error: batch norm")
    assert "--batch-size 2" in err and "Traceback" not in err


def test_unknown_errors_are_named_and_point_to_debug(monkeypatch, capsys):
    monkeypatch.setattr(export_verb, "run", _raising(KeyError("weird")))
    assert main(["export", "--checkpoint", "x.pt", "--out", "m.onnx"]) == 1
    err = capsys.readouterr().err
    assert "unexpected KeyError" in err and "--debug" in err and err.count("\n") == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(monkeypatch, where):
    monkeypatch.setattr(export_verb, "run", _raising(KeyError("weird")))
    args = ["export", "--checkpoint", "x.pt", "--out", "m.onnx"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    with pytest.raises(KeyError, match="weird"):
        main(args)


def test_os_errors_name_the_file():
    message, code = error_message(PermissionError(13, "Permission denied", "/data/x.png"))
    assert code == 2 and message.startswith("/data/x.png: Permission denied")


def test_batch_one_on_a_1x1_map_is_refused_up_front():
    model = segwise.create_model("unet", encoder="resnet18", num_classes=2)
    with pytest.raises(ValueError, match=r"batch size 1 with 32 px crops.*--batch-size 2.*"
                                         r"--crop-size 64"):
        check_batch_statistics(model, batch_size=1, crop_size=32, in_channels=3)
    check_batch_statistics(model, batch_size=1, crop_size=64, in_channels=3)  # 2x2: trains
    check_batch_statistics(model, batch_size=2, crop_size=32, in_channels=3)
    model.train()
    model(torch.rand(1, 3, 64, 64))  # the configurations let through do train
    with pytest.raises(ValueError, match="layer4.0.bn1' sees a 1x1 map.*single value per channel"):
        model(torch.rand(1, 3, 32, 32))  # the one refused does not (the model says why)


def test_cli_docs_state_the_coco_max_detections_evaluate_uses():
    from segwise.engine.instance_scoring import COCO_MAX_DETECTIONS

    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    stated = re.findall(r"`maxDets`\s+(\d+)", docs)
    assert stated and {int(v) for v in stated} == {COCO_MAX_DETECTIONS}


def test_segwise_errors_keep_their_own_message():
    from segwise.inference.export import ExportError

    err = ExportError("m.onnx: onnxruntime fails on a (1, 3, 97, 131) input; export again")
    assert error_message(err) == (str(err), 2)


@pytest.mark.slow
def test_export_of_a_stride_32_unet_verifies_at_an_odd_size_and_cleans_up(
        tiny_binary, tmp_path, capsys, monkeypatch):
    """The issue's case: a U-Net (output stride 32) trained on small images; `segwise export`
    used to crash in its own verification with a raw onnxruntime traceback."""
    import numpy as np

    from segwise.inference import OnnxPredictor
    from segwise.inference import export as export_lib
    from segwise.inference import verify as verify_lib
    from segwise.runs.checkpoint import load_run

    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_binary), "--out", str(run), "--model",
                 "unet_textbook", "--model-option", "base_width=4", "--model-option", "depth=5",
                 "--epochs", "1", "--device", "cpu", "--batch-size", "4", "--crop-size", "48",
                 "--workers", "0", "--quiet"]) == 0
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--out", str(out)]) == 0
    assert "at 64x64 and 97x131" in capsys.readouterr().out
    loaded = load_run(run / "best.pt", device="cpu")
    x = np.random.default_rng(0).random((1, loaded.info.in_channels, 360, 480), np.float32)
    deploy = export_lib.DeployModule(loaded.model, in_channels=loaded.info.in_channels,
                                     mean=loaded.info.mean, std=loaded.info.std,
                                     head="probabilities", labels=loaded.info.labels).eval()
    with torch.no_grad():
        expected = deploy(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(OnnxPredictor(out)(x), expected, atol=1e-4)  # predict --onnx

    def failing(*args, **kwargs):
        raise export_lib.ExportError("m: differs at (2, 3, 97, 131)")

    monkeypatch.setattr(verify_lib, "verify_export", failing)
    again = tmp_path / "again.onnx"
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--out", str(again)]) == 2
    assert "differs at (2, 3, 97, 131)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "run"]  # no leftovers
