"""The training loop: exact resume, reproducibility, divergence, outputs."""

from __future__ import annotations

import json

import pytest
import torch

from segwise.engine.checkpoint import load_checkpoint
from segwise.engine.trainer import TrainingDivergedError, fit

pytestmark = pytest.mark.slow


def _val(history):
    return [(h["epoch"], h["train_loss"], h.get("val_mean_dice")) for h in history]


def test_resume_is_exact(tiny_multiclass, tmp_path, fast_config):
    config = fast_config(tiny_multiclass, epochs=4)
    straight = fit(config, tmp_path / "straight", quiet=True)
    part = fit(config, tmp_path / "split", quiet=True, stop_after_epoch=2)
    assert len(part.history) == 2
    resumed = fit(None, tmp_path / "split", resume=True, quiet=True)
    assert _val(resumed.history) == _val(straight.history)  # bit-identical on CPU
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "split" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_metrics_and_outputs(tiny_binary, tmp_path, fast_config):
    config = fast_config(tiny_binary, epochs=2)
    first = fit(config, tmp_path / "a", quiet=True)
    second = fit(config, tmp_path / "b", quiet=True)
    assert _val(first.history) == _val(second.history)
    run = tmp_path / "a"
    for name in ("best.pt", "last.pt", "config.yaml", "data_info.json", "metrics.jsonl",
                 "metrics.csv", "curves.png", "overlays.png"):
        assert (run / name).is_file(), name
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["model_args"]["num_classes"] == 1  # binary -> one sigmoid channel
    assert ckpt["data_info"]["task"] == "binary"


def test_run_folder_is_never_overwritten(tiny_binary, tmp_path, fast_config):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already holds files"):
        fit(fast_config(tiny_binary), run, quiet=True)
    assert (run / "notes.txt").read_text() == "mine"


def test_nan_loss_stops_with_step_and_keeps_last_good(tiny_binary, tmp_path, monkeypatch,
                                                      fast_config):
    import segwise.losses as losses

    real = losses.create_loss

    def poisoned(*args, **kwargs):
        inner = real(*args, **kwargs)
        calls = {"n": 0}

        def loss(logits, target):
            calls["n"] += 1
            value = inner(logits, target)
            return value * float("nan") if calls["n"] >= 4 else value

        return loss

    monkeypatch.setattr(losses, "create_loss", poisoned)
    run = tmp_path / "run"
    # 10 images, val 2 -> 8 train / batch 4 -> 2 steps per epoch: step 4 is in epoch 2
    with pytest.raises(TrainingDivergedError, match=r"loss is nan at epoch 2, step 4"):
        fit(fast_config(tiny_binary, epochs=3), run, quiet=True)
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["training"]["epoch"] == 1
