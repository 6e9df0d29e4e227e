"""What a user sees while a run works: durations, progress through a dataset, budgets.

Pure helpers: :func:`format_duration`, :class:`RunPlan`, and
:class:`ProgressDataset`, a read-through view of a dataset that reports how far a pass over it
has come (validation and ``segwise evaluate`` read their images one at a time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "WARMUP_SHARE_NOTICE",
    "ProgressDataset",
    "RunPlan",
    "describe_warmup",
    "epoch_line",
    "format_duration",
    "progress_line",
    "remaining_validations",
    "step_line",
]


def format_duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3 h 05 min``: rounded for a person, not a benchmark.

    Args:
        seconds: a non-negative duration (NaN or infinity reads ``?``).
    """
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest:02d} min"


class ProgressDataset:
    """A dataset that calls ``report(done, total, seconds)`` as a pass over it goes on.

    When item ``k`` is read, the ``k - 1`` items before it have been processed by the
    caller; ``report`` is then called with ``done = k - 1`` whenever that is a multiple of
    ``every`` (``total // parts``), and ``seconds`` counted from the first read. ``total`` is
    the number of items the pass will read (``len(dataset)`` unless given).

    Args:
        dataset: any object with ``__getitem__`` and ``__len__``.
        report: the callback.
        total: items this pass reads (e.g. a shard of the indices).
        parts: how many reports a pass makes (about).
    """

    def __init__(
        self,
        dataset: Any,
        report: Callable[[int, int, float], None],
        *,
        total: int | None = None,
        parts: int = 5,
    ) -> None:
        self.dataset = dataset
        self.report = report
        self.total = len(dataset) if total is None else total
        self.every = max(1, self.total // max(1, parts))
        self.done = 0
        self.start = time.perf_counter()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # samples, info, ... of the wrapped dataset
        return getattr(self.dataset, name)

    def __getitem__(self, i: int) -> Any:
        # reading item k means items 1..k-1 have been processed (read, then used by the
        # caller): report those, so the rate counts the caller's work, not just the reads
        now = time.perf_counter()
        if self.done == 0:
            self.start = now
        elif self.done % self.every == 0:
            self.report(self.done, self.total, now - self.start)
        self.done += 1
        return self.dataset[i]


def progress_line(label: str, done: int, total: int, seconds: float) -> str:
    """``  validating 16/64 images, 2.1 img/s, eta 23 s``."""
    rate = done / max(seconds, 1e-9)
    eta = (total - done) / rate if done else math.inf
    return f"  {label} {done}/{total} images, {rate:.1f} img/s, eta {format_duration(eta)}"


@dataclass
class RunPlan:
    """How long the run is: epochs and optimizer steps (the schedule ends at ``total_steps``).

    ``epochs`` is ``planned_epochs`` (fitted to a time limit by runs before the time plan;
    read from their checkpoints) or the configured epochs, cut to ``ceil(max_steps /
    steps_per_epoch)``; ``total_steps`` is ``epochs * steps_per_epoch`` cut to ``max_steps``.
    A time plan (``budget``, a :class:`segwise.engine.budget.BudgetPlan`) cuts both further
    and sets the validations (``val_every``, ``val_images``) and the warmup.
    """

    steps_per_epoch: int
    config_epochs: int
    max_steps: int | None
    planned_epochs: int | None
    epochs: int = 0
    total_steps: int = 0
    config_val_every: int = 1
    budget: Any = None  # BudgetPlan or None

    def __post_init__(self) -> None:
        self._update()

    def _update(self) -> None:
        epochs = self.planned_epochs or self.config_epochs
        total = epochs * self.steps_per_epoch
        if self.max_steps is not None:
            epochs = min(epochs, math.ceil(self.max_steps / max(1, self.steps_per_epoch)))
            total = min(epochs * self.steps_per_epoch, self.max_steps)
        if self.budget is not None:
            total = min(total, self.budget.total_steps)
            epochs = max(1, math.ceil(total / max(1, self.steps_per_epoch)))
        self.epochs, self.total_steps = epochs, total

    def apply_budget(self, budget: Any) -> None:
        """Fit the plan to a time plan (steps, validations, warmup)."""
        self.budget = budget
        self._update()

    @property
    def val_every(self) -> int:
        """Epochs between validations (the last epoch always validates)."""
        return self.budget.val_every if self.budget is not None else self.config_val_every

    @property
    def val_images(self) -> int | None:
        """Images per validation (spread over the val set), or None for all of them."""
        return self.budget.val_images if self.budget is not None else None

    def warmup_steps(self, configured: int) -> int:
        """The warmup: the time plan's, else ``configured`` (of the configured run)."""
        return self.budget.warmup_steps if self.budget is not None else configured

    def describe(self, time_limit: float | None) -> str:
        text = (f"budget    {self.epochs} epochs x {self.steps_per_epoch} steps = "
                f"{self.total_steps} steps")
        if self.max_steps is not None:
            text += f" (max_steps={self.max_steps})"
        if time_limit is not None and self.budget is None:
            text += (f", time limit {format_duration(time_limit)} (the steps, warmup and "
                     "validations are planned from it after the first few steps)")
        elif time_limit is not None:
            text += f", fitted to the time limit {format_duration(time_limit)}"
        return text


WARMUP_SHARE_NOTICE = 0.10  # warmup above this share of the run's steps gets a hint


def describe_warmup(warmup_steps: int, total_steps: int, steps_per_epoch: int) -> str:
    """The banner's warmup line: steps and share of the run, with a hint when it is large.

    One epoch of warmup is 2.5 % of a 40-epoch run but a quarter of a 4-epoch one, where the
    learning rate spends much of the run near zero (issue 17). The default is capped at 5 %
    (:func:`segwise.engine.schedule.warmup_steps`); a value the user gave is kept, and this
    line says when it is large.
    """
    share = warmup_steps / max(1, total_steps)
    text = f"warmup    {warmup_steps} steps = {100 * share:.1f} % of the run's {total_steps}"
    if share > WARMUP_SHARE_NOTICE:
        epochs = 0.05 * total_steps / max(1, steps_per_epoch)
        text += f"; a short run: --warmup-epochs {epochs:.2g} would warm up over 5 %"
    return text


def remaining_validations(epoch: int, plan: RunPlan, val_every: int) -> int:
    """Validations from ``epoch`` (included) to the end of the plan."""
    return sum(1 for e in range(epoch, plan.epochs + 1) if e % val_every == 0 or e == plan.epochs)


def step_line(epoch, done, plan, global_step, loss, images_per_s, step_seconds,
              val_seconds, val_every, seconds_left=None) -> str:
    """``  epoch 2 step 3/10 loss 0.41 8.0 img/s eta epoch 12 s, run 5 min``.

    The run's ETA counts the steps left in the whole plan at this epoch's step time, plus
    the validations left at the last validation's time (or says how many when none ran yet);
    with a time limit (``seconds_left``, the time left of it) never more than that, since the
    run stops there.
    """
    epoch_steps = min(plan.steps_per_epoch, plan.total_steps - (global_step - done))
    eta_epoch = step_seconds * (epoch_steps - done)
    eta_run = step_seconds * (plan.total_steps - global_step)
    validations = remaining_validations(epoch, plan, val_every)
    if seconds_left is not None:
        eta = eta_run + validations * (val_seconds or 0.0)
        run = f"run {format_duration(min(eta, max(0.0, seconds_left)))} (time limit)"
    elif val_seconds is not None:
        run = f"run {format_duration(eta_run + validations * val_seconds)}"
    else:
        run = f"run {format_duration(eta_run)} + {validations} validation(s)"
    return (f"  epoch {epoch} step {done}/{epoch_steps} loss {loss:.4f} "
            f"{images_per_s:.1f} img/s eta epoch {format_duration(eta_epoch)}, {run}")


def epoch_line(record: dict[str, Any], plan: RunPlan, improved: bool, hint: str | None,
               elapsed: float) -> str:
    """``epoch 2/5 | loss 0.5000 | 3.0 img/s | val loss 0.4000 | mean_dice 0.8 | * best | ...``.

    The validation values (accuracies left out), ``* best`` when ``best.pt`` was written, the
    last validation's hint in epochs that validated, and the time since the run started.
    """
    parts = [
        f"epoch {record['epoch']}/{plan.epochs}",
        f"loss {record['train_loss']:.4f}",
        f"{record['train_images_per_s']:.1f} img/s",
    ]
    for key, value in record.items():
        if key.startswith("val_") and value is not None and not key.endswith("accuracy"):
            parts.append(f"{'val loss' if key == 'val_loss' else key[4:]} {value:.4f}")
    if improved:
        parts.append("* best")
    if hint is not None and any(k.startswith("val_") for k in record):
        parts.append(f"note: {hint}")
    parts.append(f"{format_duration(elapsed)} elapsed")
    return " | ".join(parts)
