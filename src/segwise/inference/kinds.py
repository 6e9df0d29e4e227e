"""What a predictor returns, as one enum that every predictor module and the CLI share (kept
apart from :mod:`segwise.inference.predictor`, which dispatches to the volume predictor, so
that neither imports the other)."""

from __future__ import annotations

from enum import Enum

__all__ = ["PredictionKind"]


class PredictionKind(str, Enum):
    """What a predictor returns: ``SEMANTIC`` (class indices and probabilities per pixel or
    voxel: :class:`~segwise.inference.SemanticPrediction`, and for runs trained on volumes
    :class:`~segwise.inference.VolumePrediction`) or ``INSTANCE``
    (:class:`~segwise.instance.InstancePrediction`)."""

    SEMANTIC = "semantic"
    INSTANCE = "instance"
