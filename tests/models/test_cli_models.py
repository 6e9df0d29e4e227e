"""The ``segwise models`` verb."""

from __future__ import annotations

from segwise.cli.main import main


def test_lists_models_and_encoders(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("unet", "unet_textbook", "fcn8s", "deeplabv3plus", "output_stride"):
        assert name in out
    assert main(["models", "--encoders"]) == 0
    out = capsys.readouterr().out
    assert "xception65" in out and "timm:<name>" in out


def test_counts_parameters(capsys):
    assert main(["models", "--count", "unet_textbook", "--num-classes", "2"]) == 0
    assert "31,037,698 parameters" in capsys.readouterr().out


def test_bad_name_is_a_user_error(capsys):
    assert main(["models", "--count", "nope"]) == 2
    assert "model='nope' is not valid" in capsys.readouterr().err
