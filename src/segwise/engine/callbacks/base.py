"""The training loop's seam: what a callback sees and the hooks it may implement.

:func:`segwise.engine.trainer.fit` runs a short loop and hands everything else (checkpoints,
early stopping, logs, pictures, console lines, hints) to a list of small callback objects,
composed rather than subclassed (the design of Keras' and PyTorch Lightning's callback lists,
without their trainer class). The loop calls, in this order::

    on_fit_start(run)
    for each epoch:
        on_epoch_start(run, epoch)
        on_step_end(run, step)                       # after every optimizer step
        on_train_end(run, record)                    # the epoch's training half is done
        on_validation_progress(run, done, total, s)  # during a validation pass, ~5 times
        on_validation_end(run, report)               # only in epochs that validate
        on_epoch_end(run, record, improved)          # state.epoch and state.history updated
    on_fit_end(run)                                  # always, also after an error or Ctrl-C

A callback is any object with some of these methods (:class:`Callback` gives no-op defaults,
subclassing it is optional). Callbacks run on every process of a distributed run; those that
write files check ``run.ctx.is_main``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "HOOKS",
    "Callback",
    "CallbackList",
    "StepReport",
    "StopRequest",
    "TrainingRun",
    "TrainingState",
    "ValidationReport",
    "mean_across",
]

HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_step_end",
    "on_train_end",
    "on_validation_progress",
    "on_validation_end",
    "on_epoch_end",
    "on_fit_end",
)


@dataclass
class TrainingState:
    """The counters a run saves in ``last.pt`` and restores on ``--resume``."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_score: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0  # validations without improvement (read by early stopping)
    history: list[dict[str, Any]] = field(default_factory=list)
    planned_epochs: int | None = None  # epochs fitted by runs before the time plan (older)
    budget: dict[str, Any] | None = None  # the time plan (BudgetPlan.to_dict()), or None

    def record_score(self, score: float, epoch: int) -> bool:
        """Note a validation score; True when it is the new best.

        The first score is always the best so far; later ones must be finite and strictly
        higher (a NaN or a tie does not replace ``best.pt``). Otherwise ``bad_epochs`` grows.
        """
        better = self.best_score is None or (math.isfinite(score) and score > self.best_score)
        if better:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
        else:
            self.bad_epochs += 1
        return better


@dataclass(frozen=True)
class StepReport:
    """One optimizer step, as ``on_step_end`` sees it.

    Attributes:
        epoch: the epoch being trained (1-based).
        done: steps done in this epoch (1-based).
        loss: this step's loss (this process's batch).
        batch_size: images in this process's batch.
        loss_mean: the epoch's running mean loss over this process's images.
        seen: images this process trained on in this epoch.
        terms: the named parts of this step's loss (the adapter's ``StepLoss.terms``), or
            empty.
    """

    epoch: int
    done: int
    loss: float
    batch_size: int
    loss_mean: float
    seen: int
    terms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationReport:
    """One validation pass, as ``on_validation_end`` sees it.

    Attributes:
        epoch: the epoch validated.
        summary: the adapter's metrics (e.g. ``mean_dice``), already in the epoch's record as
            ``val_<name>``.
        score: ``summary[monitor]``.
        improved: the score is the run's new best (``best.pt`` is written this epoch).
        seconds: wall time of the pass.
        overlays: the adapter's kept validation pictures (main process only; may be empty).
        loss: the validation loss over every process's images (``val_loss`` in the record),
            or None where the task computes none.
        census: what the model predicted (``ValidationResult.census``), or None.
    """

    epoch: int
    summary: dict[str, float]
    score: float
    improved: bool
    seconds: float
    overlays: list = field(default_factory=list)
    loss: float | None = None
    census: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StopRequest:
    """A callback's request to end the run after this epoch (``reason`` is printed)."""

    reason: str
    early: bool = False  # counts as early stopping in ``FitResult.stopped_early``


@dataclass(eq=False)
class TrainingRun:
    """Everything a callback may read, plus the few things it may set.

    Callbacks may set ``hint`` (shown on the epoch line and returned by ``fit``) and call
    :meth:`request_stop`; ``state`` is updated by the loop. The model, optimizer and scaler
    are the live objects: a callback that changes them changes the run.
    """

    run_dir: Path
    config: Any  # the resolved RunConfig
    info: Any  # the DataInfo
    adapter: Any  # the TaskAdapter
    model: torch.nn.Module  # the bare model (not the DDP / compiled wrapper)
    ema: Any  # torch.optim.swa_utils.AveragedModel, or None
    optimizer: torch.optim.Optimizer
    scaler: Any  # torch.amp.GradScaler
    ctx: Any  # segwise.engine.distributed.DistContext
    device: torch.device
    plan: Any  # segwise.engine.progress.RunPlan (epochs, steps; shortened by a time limit)
    state: TrainingState
    monitor: str  # the summary key that selects best.pt
    model_args: dict[str, Any]
    quiet: bool = False
    clock: Callable[[], float] = time.monotonic  # the run's clock (time limit, elapsed)
    started: float = 0.0  # clock() when fit started
    val_seconds: float | None = None  # cost of the last validation
    hint: str | None = None  # the last validation's degenerate-prediction hint
    stop: StopRequest | None = None

    @property
    def talk(self) -> bool:
        """Whether this process prints (the main process of a run that is not quiet)."""
        return self.ctx.is_main and not self.quiet

    def say(self, text: str) -> None:
        """Print one line from the main process unless the run is quiet."""
        if self.talk:
            print(text, flush=True)

    def elapsed(self) -> float:
        """Seconds since :func:`fit` started, on the run's clock."""
        return self.clock() - self.started

    def request_stop(self, reason: str, *, early: bool = False) -> None:
        """End the run after the current epoch (checkpoints and logs are written first).

        The first request wins; a time limit reached in the same epoch wins over any request.
        """
        if self.stop is None:
            self.stop = StopRequest(reason, early)


class Callback:
    """No-op hooks, for callbacks that implement only some (subclassing is optional)."""

    def on_fit_start(self, run: TrainingRun) -> None:
        """Before the first epoch (after a resumed run has restored its state)."""

    def on_epoch_start(self, run: TrainingRun, epoch: int) -> None:
        """Before the first step of ``epoch`` (1-based)."""

    def on_step_end(self, run: TrainingRun, step: StepReport) -> None:
        """After every optimizer step: keep it cheap."""

    def on_train_end(self, run: TrainingRun, record: dict[str, Any]) -> None:
        """After the epoch's last step; ``record`` (epoch, step, lr, train_loss, ...) may
        receive more keys, which go to the history, metrics.jsonl and the checkpoint."""

    def on_validation_progress(self, run: TrainingRun, done: int, total: int,
                               seconds: float) -> None:
        """During a validation pass: ``done`` of ``total`` images in ``seconds``."""

    def on_validation_end(self, run: TrainingRun, report: ValidationReport) -> None:
        """After a validation pass; ``run.state`` already holds the new best, if any."""

    def on_epoch_end(self, run: TrainingRun, record: dict[str, Any], improved: bool) -> None:
        """After the epoch is complete and in ``run.state.history``."""

    def on_fit_end(self, run: TrainingRun) -> None:
        """When the run ends, however it ends (also on an error or Ctrl-C)."""


class CallbackList:
    """Calls each hook on every callback that has it, in list order.

    Args:
        callbacks: callback objects (instances, not classes).

    Raises:
        TypeError: an entry is a class, or has none of the hooks in :data:`HOOKS`.
    """

    def __init__(self, callbacks: Iterable[Any]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if isinstance(cb, type):
                raise TypeError(f"callbacks: {cb.__name__} is a class; pass an instance, "
                                f"e.g. {cb.__name__}()")
            if not any(callable(getattr(cb, hook, None)) for hook in HOOKS):
                raise TypeError(f"callbacks: {cb!r} has none of the hooks {', '.join(HOOKS)}")
        # bound methods per hook, skipping Callback's no-ops: a step costs only what is used
        self._hooks: dict[str, list[Callable[..., None]]] = {
            hook: [getattr(cb, hook) for cb in self.callbacks if _implements(cb, hook)]
            for hook in HOOKS
        }

    def has(self, hook: str) -> bool:
        """Whether any callback implements ``hook``."""
        return bool(self._hooks[hook])

    def fire(self, hook: str, *args: Any) -> None:
        """Call ``hook(*args)`` on every callback that implements it."""
        for method in self._hooks[hook]:
            method(*args)


def _implements(cb: Any, hook: str) -> bool:
    method = getattr(type(cb), hook, None)
    if method is not None:
        return method is not getattr(Callback, hook)
    return callable(getattr(cb, hook, None))  # set on the instance


def mean_across(total: float, count: int, ctx: Any, device: torch.device) -> float:
    """``total / count`` summed over the processes of a distributed run (``count`` >= 1).

    Every process must call it, in the same order (it is a collective).
    """
    if ctx.enabled:
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)
