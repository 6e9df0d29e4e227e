"""The training loop: exact resume, reproducibility, divergence, outputs."""

from __future__ import annotations

import json

import pytest
import torch

from segwise.engine.trainer import TrainingDivergedError, fit
from segwise.runs.checkpoint import load_checkpoint

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
    assert ckpt["data_info"]["labels"]["task"] == "binary"


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
            if not torch.is_grad_enabled():  # the validation loss: not a training step
                return inner(logits, target)
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


def test_max_steps_reused_folder_slim_best_and_run_folder_first(tiny_binary, tmp_path,
                                                                fast_config, capsys):
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)  # what a run that failed at start-up leaves
    (run / "config.yaml").write_text("stale")
    (run / "data_info.json").write_text("{}")  # written with config.yaml at every start
    # 8 train images / batch 4 = 2 steps per epoch; max_steps 3 -> 2 epochs, 3 steps
    result = fit(fast_config(tiny_binary, epochs=5, max_steps=3), run)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"run folder {run}")
    assert "budget    2 epochs x 2 steps = 3 steps (max_steps=3)" in out
    banner = "\n".join(out)
    assert "weights=none: random init" in banner  # said, not assumed
    assert "crop=48 batch=4 workers=0 " in banner  # given values carry no "(auto)"
    assert [(h["epoch"], h["step"]) for h in result.history] == [(1, 2), (2, 3)]
    # warmup round(0.5 * 2) = 1 step; cosine over the 2 steps after it: step index 2 is
    # halfway, lr = 1e-3 * 0.5 * (1 + cos(pi / 2)) = 5e-4 (the schedule ends at max_steps)
    assert result.history[-1]["lr"] == pytest.approx(5e-4)
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert "optimizer" not in best["training"] and "scaler" not in best["training"]
    assert "optimizer" in last["training"]
    assert best["training"]["epoch"] == result.best_epoch
    assert not (run / ".lock").exists()
    _check_validation_loss(last, tiny_binary, result.history[-1]["val_loss"])


def _check_validation_loss(ckpt, root, logged):
    """val_loss = the run's loss averaged over the validation images, recomputed here."""
    import numpy as np

    from segwise.data import DataInfo, SegmentationDataset, discover_dataset, eval_transforms
    from segwise.losses import create_loss
    from segwise.runs.checkpoint import build_model_from_checkpoint

    info = DataInfo.from_dict(ckpt["data_info"])
    model = build_model_from_checkpoint(ckpt)
    val = SegmentationDataset(discover_dataset(root).val, info, transform=eval_transforms(info))
    loss_fn = create_loss("dicece", labels=info.labels, dice_weight=1.0, ce_weight=1.0)
    with torch.no_grad():
        values = [float(loss_fn(model(val[i]["image"][None]).float(), val[i]["mask"][None]))
                  for i in range(len(val))]
    assert logged == pytest.approx(float(np.mean(values)), rel=1e-5)


class _Clock:
    """time for the trainer: real perf_counter, monotonic = 0, 1, 2, ... per call."""

    def __init__(self) -> None:
        import time

        self.perf_counter = time.perf_counter
        self.calls = -1

    def monotonic(self) -> float:
        self.calls += 1
        return float(self.calls)


def test_time_limit_fits_the_run_after_the_first_epoch(tiny_binary, tmp_path, fast_config,
                                                       monkeypatch, capsys):
    from segwise.engine import trainer

    monkeypatch.setattr(trainer, "time", _Clock())
    # clock: start 0, two step checks 1 and 2, after epoch 1: 3 > 2.5 -> nothing more fits
    result = fit(fast_config(tiny_binary, epochs=3, time_limit=2.5), tmp_path / "run")
    assert [h["epoch"] for h in result.history] == [1]
    assert "1 epoch(s) fit, so the run ends after epoch 1 (step 2)" in capsys.readouterr().out
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["training"]["planned_epochs"] == 1  # --resume keeps the fitted schedule
    assert result.best_epoch == 1


def test_time_limit_stops_mid_epoch_validated_and_saved(tiny_binary, tmp_path, fast_config,
                                                        monkeypatch, capsys):
    from segwise.engine import trainer

    monkeypatch.setattr(trainer, "time", _Clock())
    # clock: start 0, step check 1 (ok), step check 2 > 1.5 -> stop after one step
    result = fit(fast_config(tiny_binary, epochs=3, time_limit=1.5), tmp_path / "run")
    assert [(h["epoch"], h["step"]) for h in result.history] == [(1, 1)]
    assert "val_mean_dice" in result.history[0]
    assert "time limit 2 s reached in epoch 1: stopped; best.pt is epoch 1" in (
        capsys.readouterr().out)
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "last.pt").is_file()


def test_ctrl_c_says_what_was_saved_and_how_to_resume(tiny_binary, tmp_path, fast_config,
                                                      monkeypatch, capsys):
    from segwise.engine import trainer

    real = trainer.lr_at_step

    def interrupt(step, **kwargs):
        if step == 2:  # the first step of epoch 2
            raise KeyboardInterrupt
        return real(step, **kwargs)

    monkeypatch.setattr(trainer, "lr_at_step", interrupt)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(fast_config(tiny_binary, epochs=3), run)
    out = capsys.readouterr().out
    assert f"interrupted in epoch 2: {run / 'last.pt'} holds epoch 1 (step 2)" in out
    assert f"segwise train --resume {run}" in out
    assert not (run / ".lock").exists()


def test_a_live_writer_locks_the_run_folder(tiny_binary, tmp_path, fast_config):
    import os

    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(f"{os.getppid()}\n")
    with pytest.raises(FileExistsError, match="being written by process"):
        fit(fast_config(tiny_binary), run, quiet=True)


def test_truncated_image_stops_the_start_and_leaves_a_reusable_folder(tiny_binary, tmp_path,
                                                                      fast_config):
    import shutil

    from segwise.data.info import DataError
    from segwise.engine.run_folder import check_new_run_folder

    data = tmp_path / "data"
    shutil.copytree(tiny_binary, data)
    victim = sorted((data / "images").iterdir())[-1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    run = tmp_path / "run"
    with pytest.raises(DataError, match=rf"(?s)cannot be decoded.*{victim.name}"):
        fit(fast_config(data), run, quiet=True)
    assert not (run / "last.pt").exists()
    check_new_run_folder(run)  # the same --out can be used again
