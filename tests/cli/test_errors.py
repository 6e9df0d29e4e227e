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
from segwise.engine.setup import check_batch_statistics


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
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model(torch.rand(1, 3, 32, 32))  # the one refused does not


def test_cli_docs_state_the_coco_max_detections_evaluate_uses():
    from segwise.cli._instance import COCO_MAX_DETECTIONS

    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    stated = re.findall(r"`maxDets`\s+(\d+)", docs)
    assert stated and {int(v) for v in stated} == {COCO_MAX_DETECTIONS}


def test_segwise_errors_keep_their_own_message():
    from segwise.inference.export import ExportError

    err = ExportError("m.onnx: onnxruntime fails on a (1, 3, 97, 131) input; export again")
    assert error_message(err) == (str(err), 2)
