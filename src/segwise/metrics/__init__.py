"""Semantic segmentation metrics: definitions in ``docs/metrics.md``.

Streaming metrics share one contract (``docs/contracts.md``): ``update(pred, target)`` with
``int64 (N, H, W)`` label maps, ``compute()``, ``reset()``, ``merge(other)``, ``all_reduce()``,
``state_dict()`` / ``load_state_dict()``. Importing this package pulls in torch only (no optional
libraries; the boundary metrics import scipy when first used).
"""

from __future__ import annotations

from segwise.metrics.boundary import BoundaryMetrics, BoundaryScores, ImageReduction
from segwise.metrics.confusion import ConfusionMatrix
from segwise.metrics.functional import (
    batch_confusion_matrix,
    confusion_matrix,
    dice_score,
    iou_score,
    labels_from_logits,
)
from segwise.metrics.options import Average, MetricEmptyRule
from segwise.metrics.per_image import PerImageDice, PerImageScores
from segwise.metrics.scores import SegmentationScores, scores_from_confusion
from segwise.metrics.surface import (
    DistanceMetric,
    average_surface_distance,
    hausdorff_distance,
    normalized_surface_dice,
    surface_statistics,
)

__all__ = [
    "Average",
    "BoundaryMetrics",
    "BoundaryScores",
    "ConfusionMatrix",
    "DistanceMetric",
    "ImageReduction",
    "MetricEmptyRule",
    "PerImageDice",
    "PerImageScores",
    "SegmentationScores",
    "average_surface_distance",
    "batch_confusion_matrix",
    "confusion_matrix",
    "dice_score",
    "hausdorff_distance",
    "iou_score",
    "labels_from_logits",
    "normalized_surface_dice",
    "scores_from_confusion",
    "surface_statistics",
]
