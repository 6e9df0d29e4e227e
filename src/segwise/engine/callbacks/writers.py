"""The callbacks that write the run folder: checkpoints, metrics logs, overlay pictures.

All of them write from the main process only (``run.ctx.is_main``); the others compute what
the collectives need and write nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from segwise.engine.callbacks.base import (
    Callback,
    StepReport,
    TrainingRun,
    TrainingState,
    ValidationReport,
    mean_across,
)
from segwise.engine.run_log import RunLog
from segwise.runs.checkpoint import save_checkpoint, weights_only_payload

__all__ = [
    "Checkpoints",
    "LossTerms",
    "MetricsLog",
    "OverlayPictures",
    "checkpoint_payload",
    "restore_state",
]


def checkpoint_payload(run: TrainingRun) -> dict[str, Any]:
    """What ``last.pt`` holds: config, data info, model (and EMA) weights, training state.

    The layout is :mod:`segwise.runs.checkpoint`'s; :func:`restore_state` reads it back.
    """
    state, ema = run.state, run.ema
    return {
        "config": run.config.to_dict(),
        "data_info": run.info.to_dict(),
        "model_args": run.model_args,
        # the loss's class weights as numbers (config keeps what was asked: a rule or a list)
        "class_weights": (None if run.adapter.class_weights is None
                          else [float(w) for w in run.adapter.class_weights]),
        "model": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        "ema": (
            {k: v.detach().cpu() for k, v in ema.module.state_dict().items()}
            if ema is not None
            else None
        ),
        "training": {
            "epoch": state.epoch,
            "step": state.step,
            "best_score": state.best_score,
            "best_epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs,
            "history": state.history,
            "planned_epochs": state.planned_epochs,
            "budget": state.budget,
            "optimizer": run.optimizer.state_dict(),
            "scaler": run.scaler.state_dict(),
            "ema_n_averaged": (int(ema.n_averaged) if ema is not None else None),
        },
    }


def restore_state(ckpt: dict[str, Any], model, optimizer, scaler, ema) -> TrainingState:
    """Load a ``last.pt`` payload into the live objects; the training counters it held."""
    model.load_state_dict(ckpt["model"])
    training = ckpt["training"]
    optimizer.load_state_dict(training["optimizer"])
    scaler.load_state_dict(training["scaler"])
    if ema is not None and ckpt.get("ema") is not None:
        ema.module.load_state_dict(ckpt["ema"])
        ema.n_averaged.fill_(training["ema_n_averaged"] or 0)
    return TrainingState(
        epoch=training["epoch"],
        step=training["step"],
        best_score=training["best_score"],
        best_epoch=training["best_epoch"],
        bad_epochs=training["bad_epochs"],
        history=list(training["history"]),
        planned_epochs=training.get("planned_epochs"),
        budget=training.get("budget"),
    )


class Checkpoints(Callback):
    """``last.pt`` after every epoch; ``best.pt`` (weights, no optimizer) when it improved.

    Both are written atomically (:func:`~segwise.runs.checkpoint.save_checkpoint`), so a
    crash leaves the previous file whole and ``--resume`` continues from the last epoch.
    """

    def on_epoch_end(self, run: TrainingRun, record: dict[str, Any], improved: bool) -> None:
        if not run.ctx.is_main:
            return
        payload = checkpoint_payload(run)
        save_checkpoint(run.run_dir / "last.pt", payload)
        if improved:
            save_checkpoint(run.run_dir / "best.pt", weights_only_payload(payload))


class MetricsLog(Callback):
    """metrics.jsonl, metrics.csv, curves.png and TensorBoard, rewritten after every epoch
    from the whole history (:class:`~segwise.engine.run_log.RunLog`)."""

    def __init__(self) -> None:
        self.log: RunLog | None = None

    def on_fit_start(self, run: TrainingRun) -> None:
        self.log = RunLog(run.run_dir, enabled=run.ctx.is_main, monitor=run.monitor)

    def on_epoch_end(self, run: TrainingRun, record: dict[str, Any], improved: bool) -> None:
        if self.log is not None:
            self.log.write(run.state.history)

    def on_fit_end(self, run: TrainingRun) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


class LossTerms(Callback):
    """The parts of a multi-term loss, as ``loss/<name>`` epoch means in the record.

    The terms of each step (``StepReport.terms``: the adapter's ``StepLoss.terms``, e.g. Mask
    R-CNN's ``classifier``, ``box_reg``, ``mask``, ...) are averaged over the epoch's images,
    like ``train_loss`` (weighted by batch size, summed over processes). A loss without terms
    adds nothing.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def on_epoch_start(self, run: TrainingRun, epoch: int) -> None:
        self.sums.clear()
        self.counts.clear()

    def on_step_end(self, run: TrainingRun, step: StepReport) -> None:
        for name, value in step.terms.items():
            self.sums[name] += float(value) * step.batch_size
            self.counts[name] += step.batch_size

    def on_train_end(self, run: TrainingRun, record: dict[str, Any]) -> None:
        for name in sorted(self.sums):  # the same order on every process (a collective each)
            record[f"loss/{name}"] = mean_across(self.sums[name], self.counts[name], run.ctx,
                                                 run.device)


class OverlayPictures(Callback):
    """overlays.png: the kept validation images of the best epoch, with its score."""

    def on_validation_end(self, run: TrainingRun, report: ValidationReport) -> None:
        if not (run.ctx.is_main and report.overlays and report.improved):
            return
        from segwise.viz import save_overlay_grid

        save_overlay_grid(
            run.run_dir / "overlays.png",
            report.overlays,
            labels=run.info.labels,
            title=f"best.pt: epoch {report.epoch}, validation {run.monitor} {report.score:.4f}",
        )
