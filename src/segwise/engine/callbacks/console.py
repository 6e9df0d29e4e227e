"""The callbacks a user reads: progress lines with ETAs, hints, early stopping."""

from __future__ import annotations

import time
from typing import Any

from segwise.engine.callbacks.base import Callback, StepReport, TrainingRun, ValidationReport
from segwise.engine.hints import degenerate_prediction_hint
from segwise.engine.progress import epoch_line, progress_line, step_line

__all__ = ["EarlyStopping", "PredictionHints", "ProgressLines"]

VAL_PROGRESS_AFTER_S = 5.0  # validation progress lines only once a pass has taken this long
STEP_LINE_EVERY_S = 60.0  # step lines: step 1, every fifth of an epoch, and at least this often


class ProgressLines(Callback):
    """The console lines of a run: steps (with ETAs), slow validations, one line per epoch.

    A step line is printed after step 1, every fifth of an epoch and at least every
    ``STEP_LINE_EVERY_S`` seconds; a validation pass reports its progress once it has taken
    ``VAL_PROGRESS_AFTER_S`` seconds. Nothing is printed by a quiet run or a non-main process.
    """

    def __init__(self) -> None:
        self.epoch_t0 = 0.0
        self.last_line = 0.0

    def on_epoch_start(self, run: TrainingRun, epoch: int) -> None:
        self.epoch_t0 = self.last_line = time.perf_counter()

    def on_step_end(self, run: TrainingRun, step: StepReport) -> None:
        if not run.talk:
            return
        now = time.perf_counter()
        fifth = max(1, run.plan.steps_per_epoch // 5)
        if step.done == 1 or step.done % fifth == 0 or now - self.last_line >= STEP_LINE_EVERY_S:
            spent, self.last_line = now - self.epoch_t0, now
            limit = run.config.train.time_limit
            print(step_line(step.epoch, step.done, run.plan, run.state.step, step.loss_mean,
                            step.seen * run.ctx.world_size / max(spent, 1e-9),
                            spent / step.done, run.val_seconds, run.plan.val_every,
                            seconds_left=None if limit is None else limit - run.elapsed()),
                  flush=True)

    def on_validation_progress(self, run: TrainingRun, done: int, total: int,
                               seconds: float) -> None:
        if run.talk and seconds >= VAL_PROGRESS_AFTER_S:
            print(progress_line("validating", done, total, seconds), flush=True)

    def on_epoch_end(self, run: TrainingRun, record: dict[str, Any], improved: bool) -> None:
        run.say(epoch_line(record, run.plan, improved, run.hint, run.elapsed()))


class PredictionHints(Callback):
    """Sets ``run.hint`` from what the model predicted in the last validation (the report's
    census, :func:`~segwise.engine.hints.degenerate_prediction_hint`: e.g. background
    everywhere)."""

    def on_validation_end(self, run: TrainingRun, report: ValidationReport) -> None:
        run.hint = degenerate_prediction_hint(
            report.census, run.info.labels.names
        )


class EarlyStopping(Callback):
    """Stops the run once ``patience`` validations in a row did not improve the monitor.

    The count is ``run.state.bad_epochs`` (saved in ``last.pt``, so it survives
    ``--resume``); None never stops.

    Args:
        patience: validations without improvement before stopping, or None.
    """

    def __init__(self, patience: int | None) -> None:
        self.patience = patience

    def on_epoch_end(self, run: TrainingRun, record: dict[str, Any], improved: bool) -> None:
        if self.patience is not None and run.state.bad_epochs >= self.patience:
            run.request_stop(f"early stopping: no improvement for {self.patience} validations",
                             early=True)
