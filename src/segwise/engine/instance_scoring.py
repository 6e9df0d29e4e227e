"""Instance scores for the one evaluation loop (:func:`segwise.engine.evaluation.evaluation_loop`).

:class:`InstanceScorer` is the instance counterpart of
:class:`~segwise.engine.evaluation.SemanticScorer`: it takes an instance dataset item and an
:class:`~segwise.instance.InstancePrediction` and accumulates the DSB2018 score, AP, PQ/SQ/RQ
and (optionally) COCO mask AP (definitions: ``docs/instance.md``), plus one row per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["COCO_MAX_DETECTIONS", "InstanceEvalResult", "InstanceScorer"]

# COCO's maxDets is 100, but crowded images (DSB2018 has up to 375 nuclei per image) would
# then count only the 100 best detections; segwise.instance.coco reads AP at any limit.
COCO_MAX_DETECTIONS = 1000


@dataclass(frozen=True)
class InstanceEvalResult:
    """Scores of one instance evaluation pass.

    Attributes:
        metrics: :class:`~segwise.metrics.instance.InstanceMetricsResult` over the images.
        per_image: one ``{"id", "dsb_score", "ground_truth", "predicted"}`` row per image
            (this process's images only when distributed).
    """

    metrics: Any
    per_image: list[dict[str, Any]]


class InstanceScorer:
    """Instance metrics of predictions against an instance dataset's items.

    ``update(item, prediction)``: ``item["instances"]`` (the instance item contract, cleaned of
    instances the crop emptied) against an ``InstancePrediction`` of ``item["image"]``.

    Args:
        coco: also compute COCO mask AP (pycocotools; keeps every image's RLEs in memory).
        coco_max_detections: COCOeval's largest ``maxDets``.
    """

    def __init__(self, *, coco: bool = False,
                 coco_max_detections: int = COCO_MAX_DETECTIONS) -> None:
        from segwise.metrics.instance import InstanceMetrics

        self.metrics = InstanceMetrics(coco=coco, coco_max_detections=coco_max_detections)
        self.per_image: list[dict[str, Any]] = []

    def update(self, item: dict[str, Any], prediction: Any) -> None:
        from segwise.instance import InstancePrediction
        from segwise.metrics.instance import dsb_score, split_crowd

        # the dataset cleaned the instances (segwise.data.datasets.clean_instances, once)
        objects, crowd = split_crowd(item["instances"])  # COCO iscrowd
        target = InstancePrediction.from_target(objects)
        self.metrics.update(prediction, target, crowd=crowd)
        self.per_image.append({"id": item["id"],
                               "dsb_score": dsb_score(prediction, target, crowd=crowd),
                               "ground_truth": len(target), "predicted": len(prediction)})

    def all_reduce(self) -> None:
        self.metrics.all_reduce()

    def compute(self) -> InstanceEvalResult:
        return InstanceEvalResult(self.metrics.compute(), list(self.per_image))
