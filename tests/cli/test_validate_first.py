"""A run checks every name and option before it writes: a refused run leaves nothing on disk.

For each option a user can misspell, ``segwise train`` exits non-zero, names the bad value, and
the output folder does not exist afterwards (so the corrected retry with the same ``--out``
just works). Nothing here trains: every refusal happens before the first step.
"""

from __future__ import annotations

import pytest

from segwise.cli.main import main

FAST = ["--model", "unet_textbook", "--model-option", "base_width=8", "--model-option",
        "depth=3", "--epochs", "1", "--device", "cpu", "--batch-size", "2", "--crop-size", "32",
        "--workers", "0", "--quiet"]


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


@pytest.mark.parametrize(("change", "named"), [
    (lambda a: _replace(a, "--model", "unett"), "unett"),
    (lambda a: [*a, "--encoder", "resnet344"], "resnet344"),
    (lambda a: [*a, "--model-option", "bogus=1"], "bogus"),
    (lambda a: _replace(a, "--model-option", "base_width=-8"), "base_width"),
    (lambda a: [*a, "--loss", "dicee"], "dicee"),
    (lambda a: [*a, "--monitor", "dsb_score"], "dsb_score"),
    (lambda a: [*a, "--ignore-index", "1"], "ignore_index=1"),
], ids=["model", "encoder", "model-option", "model-option-value", "loss", "monitor",
        "ignore-index"])
def test_a_misspelt_option_leaves_no_folder(change, named, tiny_multiclass, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", str(tiny_multiclass), "--out", str(out), *change(FAST)])
    err = capsys.readouterr().err
    assert code != 0 and named in err
    assert not out.exists()


def test_missing_data_folder_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(out), *FAST]) != 0
    assert "nope" in capsys.readouterr().err and not out.exists()


def test_resume_of_a_folder_without_checkpoint_creates_nothing(tmp_path, capsys):
    target = tmp_path / "never_ran"
    assert main(["train", "--resume", str(target), "--quiet"]) != 0
    assert "never_ran" in capsys.readouterr().err and not target.exists()


def test_out_naming_a_file_is_refused_and_the_file_is_kept(tiny_multiclass, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main(["train", "--data", str(tiny_multiclass), "--out", str(target), *FAST]) != 0
    assert str(target) in capsys.readouterr().err and target.read_text() == "mine"


def test_a_refused_retry_leaves_a_failed_starts_folder_as_it_was(tiny_multiclass, tmp_path,
                                                                  capsys):
    """The leftovers of a failed start are cleared only once the new run passed its checks."""
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.yaml", "data_info.json", "model_args.json"):
        (out / name).write_text("left by a failed start")
    code = main(["train", "--data", str(tiny_multiclass), "--out", str(out),
                 *_replace(FAST, "--model", "unett")])
    assert code != 0 and "unett" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml", "data_info.json", "model_args.json"]


def test_batch_one_on_a_1x1_map_is_refused_before_the_folder(tiny_multiclass, tmp_path, capsys):
    """The batch-statistics check is part of the checks: a batch-1 run whose encoder's deepest
    map is 1x1 (32 px crop, stride-32 ResNet-18) names the layer and the fix, and writes
    nothing (it used to write config.yaml, data_info.json and model_args.json first)."""
    out = tmp_path / "run"
    code = main(["train", "--data", str(tiny_multiclass), "--out", str(out), "--model", "unet",
                 "--encoder", "resnet18", "--batch-size", "1", "--crop-size", "32",
                 "--epochs", "1", "--device", "cpu", "--workers", "0", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert "batch-norm layer 'encoder." in err and "a single value per channel" in err
    assert "--batch-size 2 or more, or --crop-size 64 or more" in err
    assert not out.exists()
