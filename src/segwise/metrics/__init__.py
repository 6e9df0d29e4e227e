"""Semantic segmentation metrics: definitions in ``docs/metrics.md``.

Streaming metrics share one contract (``docs/contracts.md``): ``update(pred, target)`` with
``int64 (N, H, W)`` label maps, ``compute()``, ``reset()``, ``merge(other)``, ``all_reduce()``,
``state_dict()`` / ``load_state_dict()``. Importing this package pulls in torch only (no optional
libraries).
"""

from __future__ import annotations

from segwise.metrics.confusion import ConfusionMatrix
from segwise.metrics.functional import (
    batch_confusion_matrix,
    confusion_matrix,
    dice_score,
    iou_score,
    labels_from_logits,
)
from segwise.metrics.per_image import EmptyRule, PerImageDice, PerImageScores
from segwise.metrics.scores import SegmentationScores, scores_from_confusion

__all__ = [
    "ConfusionMatrix",
    "EmptyRule",
    "PerImageDice",
    "PerImageScores",
    "SegmentationScores",
    "batch_confusion_matrix",
    "confusion_matrix",
    "dice_score",
    "iou_score",
    "labels_from_logits",
    "scores_from_confusion",
]
