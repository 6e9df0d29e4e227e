"""Callbacks of the training loop: the hooks (:mod:`.base`) and the ones every run uses.

:func:`default_callbacks` is the list :func:`segwise.engine.trainer.fit` runs; a user's
``fit(..., callbacks=[...])`` run after them, so they see the files of the epoch written.
"""

from __future__ import annotations

from typing import Any

from segwise.engine.callbacks.base import (
    HOOKS,
    Callback,
    CallbackList,
    StepReport,
    StopRequest,
    TrainingRun,
    TrainingState,
    ValidationReport,
    mean_across,
)
from segwise.engine.callbacks.console import EarlyStopping, PredictionHints, ProgressLines
from segwise.engine.callbacks.writers import (
    Checkpoints,
    LossTerms,
    MetricsLog,
    OverlayPictures,
    checkpoint_payload,
    restore_state,
)

__all__ = [
    "HOOKS",
    "Callback",
    "CallbackList",
    "Checkpoints",
    "EarlyStopping",
    "LossTerms",
    "MetricsLog",
    "OverlayPictures",
    "PredictionHints",
    "ProgressLines",
    "StepReport",
    "StopRequest",
    "TrainingRun",
    "TrainingState",
    "ValidationReport",
    "checkpoint_payload",
    "default_callbacks",
    "mean_across",
    "restore_state",
]


def default_callbacks(config: Any) -> list[Callback]:
    """The callbacks of every run, in the order their hooks run.

    Validation: the hint first (the epoch line shows it), then the overlay picture. Epoch end:
    ``last.pt``/``best.pt``, then the logs, then the epoch line, then the early-stopping check.

    Args:
        config: the resolved run configuration (``train.patience`` is read).
    """
    return [
        PredictionHints(),
        OverlayPictures(),
        LossTerms(),
        Checkpoints(),
        MetricsLog(),
        ProgressLines(),
        EarlyStopping(config.train.patience),
    ]
