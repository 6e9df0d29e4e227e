"""What a new user meets first: flags for what the config has, plain refusals, listings."""

from __future__ import annotations

import json

import pytest

from segwise.cli.main import build_parser, main
from segwise.cli.train import _duration, config_dict_from_args


def _config(*flags):
    from segwise.engine.config import config_from_dict

    args = build_parser().parse_args(["train", "--data", "d", *flags])
    return config_from_dict(config_dict_from_args(args))


def test_train_flags_reach_the_config():
    c = _config("--no-hflip", "--scale-range", "0.8", "1.25", "--grad-clip", "0",
                "--val-every", "3", "--max-steps", "500", "--time-limit", "1h30m",
                "--threads", "2", "--overlay-images", "6")
    assert c.data.hflip is False and c.data.scale == (0.8, 1.25)
    assert c.optim.grad_clip is None  # 0 = off
    assert (c.train.val_every, c.train.max_steps, c.train.time_limit) == (3, 500, 5400.0)
    assert (c.train.threads, c.train.overlays) == (2, 6)
    assert _config("--no-scale").data.scale == (1.0, 1.0)
    defaults = _config()
    assert defaults.data.hflip is True and defaults.data.scale == (0.5, 2.0)
    assert defaults.optim.grad_clip == 1.0 and defaults.train.time_limit is None


@pytest.mark.parametrize(("text", "seconds"), [("900", 900.0), ("45m", 2700.0), ("2h", 7200.0),
                                               ("1h30m", 5400.0), ("90s", 90.0)])
def test_duration(text, seconds):
    assert _duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "2d"])
def test_bad_duration_is_refused(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="duration|must be > 0"):
        _duration(text)


def test_bad_limits_are_refused(capsys):
    assert main(["train", "--data", ".", "--max-steps", "0"]) == 2
    assert "train.max_steps=0 is not valid" in capsys.readouterr().err


def test_models_lists_instance_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "instance models (segwise train --task instance --model NAME):" in out
    assert "\nmaskrcnn " in out and "\nunet_watershed " in out


def test_data_inspect_json_on_a_fatal_layout_error(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    assert main(["data", "inspect", str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "no masks/" in report["fatal"] and report["problem_counts"]["error"] == 1
    assert "no masks/" in captured.err


def test_resume_of_a_folder_without_checkpoint_points_to_reuse(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("x")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert f"start it again with --out {tmp_path}" in capsys.readouterr().err


def test_console_does_not_wrap_in_logs(capsys):
    from segwise.cli._common import console

    text = "word " * 40  # 200 characters
    console().print(text)
    assert capsys.readouterr().out.strip() == text.strip()  # one line, not cut at 80


def test_offline_weights_hint_names_the_cli_flag():
    from segwise.models.weights import _unavailable

    text = str(_unavailable("resnet34", "hub", "offline mode is set"))
    assert "--weights path/to/encoder.pth" in text and "segwise train" in text
