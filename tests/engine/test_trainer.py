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


class _StepClock:
    """time for the trainer: real perf_counter; monotonic is a clock that only the run's work
    moves: ``step_cost(step)`` seconds per optimizer step, ``image_cost(call)`` seconds per
    validated image in the ``call``-th validation (0.5 s)."""

    def __init__(self, monkeypatch, step_cost, image_cost=lambda call: 0.5) -> None:
        import time

        from segwise.engine import trainer
        from segwise.engine.adapters import SemanticAdapter

        self.perf_counter = time.perf_counter
        self.now, self.steps, self.validations = 0.0, 0, 0
        real_step, real_validate = trainer._step, SemanticAdapter.validate

        def step(*args, **kwargs):
            self.steps += 1
            self.now += step_cost(self.steps)
            return real_step(*args, **kwargs)

        def validate(adapter, model, val_ds, *, indices, **kwargs):
            self.validations += 1
            self.now += image_cost(self.validations) * len(indices)
            return real_validate(adapter, model, val_ds, indices=indices, **kwargs)

        monkeypatch.setattr(trainer, "_step", step)
        monkeypatch.setattr(SemanticAdapter, "validate", validate)
        monkeypatch.setattr(trainer, "time", self)

    def monotonic(self) -> float:
        return self.now


def test_time_limit_plans_the_run_from_the_first_steps(tiny_binary, tmp_path, fast_config,
                                                       monkeypatch, capsys):
    clock = _StepClock(monkeypatch, lambda step: 1.0)
    # 2 steps per epoch (8 train images, batch 4), 2 val images; probe: 1 s per step after
    # the first, 0.5 s per val image, 17.5 s left -> 16 steps, validations at epochs 4 and 8
    # of both val images (budget.py; the same numbers in test_budget.py)
    result = fit(fast_config(tiny_binary, epochs=50, time_limit=20), tmp_path / "run")
    out = capsys.readouterr().out
    assert "time limit 20 s (the steps, warmup and validations are planned from it" in out
    assert ("time plan 20 s: 16 steps of the 100 asked (1.00 s each, measured), 8 epoch(s), "
            "warmup 1 steps; 2 validation(s) of all 2 val images (0.50 s each, every 4 epochs)"
            ) in out
    assert [h["step"] for h in result.history] == [2 * e for e in range(1, 9)]
    assert [h["epoch"] for h in result.history if "val_mean_dice" in h] == [4, 8]
    assert clock.now <= 20  # ended inside the limit, validated, with best.pt
    assert result.best_epoch in (4, 8) and (tmp_path / "run" / "best.pt").is_file()
    budget = load_checkpoint(tmp_path / "run" / "last.pt")["training"]["budget"]
    assert (budget["total_steps"], budget["val_every"], budget["val_images"]) == (16, 4, 2)


def test_time_limit_plan_survives_resume_exactly(tiny_binary, tmp_path, fast_config,
                                                 monkeypatch):
    _StepClock(monkeypatch, lambda step: 1.0)
    config = fast_config(tiny_binary, epochs=50, time_limit=20)
    straight = fit(config, tmp_path / "straight", quiet=True)
    _StepClock(monkeypatch, lambda step: 1.0)
    fit(config, tmp_path / "split", quiet=True, stop_after_epoch=4)
    clock = _StepClock(monkeypatch, lambda step: 1.0)
    resumed = fit(None, tmp_path / "split", resume=True, quiet=True)
    assert _val(resumed.history) == _val(straight.history)  # the stored plan, no new probe
    assert clock.now == 8 + 2 * 0.5  # steps 9..16 and the validation of epoch 8


def test_slower_validation_leaves_fewer_images_to_the_next(tiny_binary, tmp_path, fast_config,
                                                           monkeypatch, capsys):
    # the plan of the test above (probe image 0.5 s); the real validations take 1 s per
    # image, so after epoch 4 the one left (epoch 8) reads floor(2 x 0.5 / 1) = 1 image
    clock = _StepClock(monkeypatch, lambda step: 1.0, lambda call: 0.5 if call == 1 else 1.0)
    result = fit(fast_config(tiny_binary, epochs=50, time_limit=20), tmp_path / "run")
    assert ("time plan: validation took 1.00 s per image (planned 0.50 s), so the 1 "
            "validation(s) left read 1 images") in capsys.readouterr().out
    assert [h["epoch"] for h in result.history if "val_mean_dice" in h] == [4, 8]
    assert clock.now == 2.5 + 14 + 2 + 1  # probe, steps 3..16, 2 images, then 1
    budget = load_checkpoint(tmp_path / "run" / "last.pt")["training"]["budget"]
    assert (budget["total_steps"], budget["val_images"]) == (16, 1)


def test_time_limit_stops_mid_epoch_validated_and_saved(tiny_binary, tmp_path, fast_config,
                                                        monkeypatch, capsys):
    # probe 1 s per step -> a 4-step plan with one validation of 1 image; then steps take
    # 10 s: step 3 ends at 12.5 s > 6 s, so the run stops before step 4, validated
    clock = _StepClock(monkeypatch, lambda step: 1.0 if step <= 2 else 10.0)
    result = fit(fast_config(tiny_binary, epochs=3, time_limit=6), tmp_path / "run")
    assert [(h["epoch"], h["step"]) for h in result.history] == [(1, 2), (2, 3)]
    assert "val_mean_dice" in result.history[-1]
    assert "time limit 6 s reached in epoch 2: stopped; best.pt is epoch 2" in (
        capsys.readouterr().out)
    assert clock.now <= 6 + 10 + 0.5  # the limit, one step, one bounded validation
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


def test_overlay_rows_are_spread_over_the_val_set(tiny_multiclass, tmp_path, fast_config,
                                                  monkeypatch):
    from segwise.engine.adapters import SemanticAdapter

    real, seen = SemanticAdapter.validate, []

    def validate(adapter, model, val_ds, *, indices, **kwargs):
        seen.append(list(indices))
        return real(adapter, model, val_ds, indices=indices, **kwargs)

    monkeypatch.setattr(SemanticAdapter, "validate", validate)
    fit(fast_config(tiny_multiclass, epochs=1, overlays=2), tmp_path / "run", quiet=True)
    assert seen == [[0, 2, 1]]  # 3 val images: the pictured two are the first and the last


def test_a_limit_reached_between_epochs_adds_no_empty_epoch(tiny_binary, tmp_path, fast_config,
                                                            monkeypatch, capsys):
    # the plan of the tests above (2 steps per epoch, validation after epoch 4); that
    # validation costs 6 s per image, so the limit (20 s) passes before epoch 5's first step:
    # the run stops there, without an epoch of no steps validated again
    _StepClock(monkeypatch, lambda step: 1.0, lambda call: 0.5 if call == 1 else 6.0)
    result = fit(fast_config(tiny_binary, epochs=50, time_limit=20), tmp_path / "run")
    assert [(h["epoch"], h["step"]) for h in result.history] == [(1, 2), (2, 4), (3, 6), (4, 8)]
    assert "time limit 20 s reached before epoch 5 began: stopped; best.pt is epoch 4" in (
        capsys.readouterr().out)
