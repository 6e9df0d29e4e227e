"""Durations, budgets, run plans and progress lines, with hand-computed values."""

from __future__ import annotations

import math

import pytest

from segwise.engine.progress import (
    ProgressDataset,
    RunPlan,
    format_duration,
    progress_line,
    remaining_validations,
    step_line,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (42.4, "42 s"), (89, "89 s"), (90, "2 min"), (12 * 60, "12 min"),
     (89 * 60, "89 min"), (3 * 3600 + 5 * 60, "3 h 05 min"), (math.inf, "?"), (-3, "0 s")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_run_plan_max_steps_and_budget():
    plan = RunPlan(steps_per_epoch=4, config_epochs=10, max_steps=None, planned_epochs=None)
    assert (plan.epochs, plan.total_steps) == (10, 40)
    capped = RunPlan(steps_per_epoch=4, config_epochs=10, max_steps=9, planned_epochs=None)
    assert (capped.epochs, capped.total_steps) == (3, 9)  # ceil(9 / 4) epochs, 9 steps
    assert "max_steps=9" in capped.describe(None)
    resumed = RunPlan(steps_per_epoch=4, config_epochs=10, max_steps=None, planned_epochs=6)
    assert resumed.total_steps == 24  # a fitted plan survives --resume
    assert "time limit 2 h 00 min" in resumed.describe(7200)


def test_remaining_validations_and_step_line():
    plan = RunPlan(steps_per_epoch=10, config_epochs=5, max_steps=None, planned_epochs=None)
    # from epoch 2 with val_every 2: epochs 2 and 4, plus the last (5)
    assert remaining_validations(2, plan, 2) == 3
    # epoch 2, step 4 of 10 done (global step 14), 0.5 s per step -> 3 s left in the epoch,
    # 36 steps = 18 s left in the run plus 3 validations of 4 s each = 30 s
    line = step_line(2, 4, plan, 14, 0.25, 16.0, 0.5, 4.0, 2)
    assert line == "  epoch 2 step 4/10 loss 0.2500 16.0 img/s eta epoch 3 s, run 30 s"
    assert step_line(1, 4, plan, 4, 0.25, 16.0, 0.5, None, 1).endswith(
        "run 23 s + 5 validation(s)")


def test_progress_dataset_reports_parts_and_last():
    calls = []
    ds = ProgressDataset(list(range(10)), lambda d, t, s: calls.append((d, t)), parts=4)
    assert len(ds) == 10
    assert [ds[i] for i in range(10)] == list(range(10))
    # reading item k reports the k - 1 processed before it, every 10 // 4 = 2 items
    assert calls == [(2, 10), (4, 10), (6, 10), (8, 10)]
    shard = ProgressDataset(list(range(10)), lambda d, t, s: calls.append((d, t)), total=3,
                            parts=3)
    calls.clear()
    for i in (0, 4, 8):
        shard[i]
    assert calls == [(1, 3), (2, 3)]


def test_progress_line():
    assert progress_line("validating", 16, 64, 8.0) == (
        "  validating 16/64 images, 2.0 img/s, eta 24 s")


def test_banner_names_the_resolved_encoder():
    from segwise.engine.banner import _resolved_encoder

    assert _resolved_encoder({"name": "unet", "encoder": None}) == (
        "resnet34 (the model's default)")
    assert _resolved_encoder({"name": "unet", "encoder": "resnet18"}) == "resnet18"


def test_epoch_line_marks_best_and_the_hint():
    from segwise.engine.progress import epoch_line

    plan = RunPlan(steps_per_epoch=10, config_epochs=5, max_steps=None, planned_epochs=None)
    record = {"epoch": 2, "train_loss": 0.5, "train_images_per_s": 3.0, "val_loss": 0.4,
              "val_mean_dice": 0.0, "val_pixel_accuracy": 0.9}
    line = epoch_line(record, plan, True, "predicts background everywhere", 125.0)
    assert line == ("epoch 2/5 | loss 0.5000 | 3.0 img/s | val loss 0.4000 | mean_dice 0.0000 | "
                    "* best | note: predicts background everywhere | 2 min elapsed")


def test_warmup_line_gives_steps_share_and_a_hint_for_short_runs():
    from segwise.engine.progress import describe_warmup

    # 40 epochs x 10 steps, 1 warmup epoch: 10 of 400 steps = 2.5 %, no hint
    assert describe_warmup(10, 400, 10) == "warmup    10 steps = 2.5 % of the run's 400"
    # the run: 248 steps, 62 per epoch, 1 warmup epoch = 25 %; 5 % is 12.4 steps = 0.2 ep
    line = describe_warmup(62, 248, 62)
    assert line.startswith("warmup    62 steps = 25.0 % of the run's 248")
    assert "--warmup-epochs 0.2 would warm up over 5 %" in line
