"""Instance scores for the one evaluation loop (:func:`segwise.engine.evaluation.evaluation_loop`).

:class:`InstanceScorer` is the instance counterpart of
:class:`~segwise.engine.evaluation.SemanticScorer`: it takes an instance dataset item and an
:class:`~segwise.instance.InstancePrediction` and accumulates the DSB2018 score, AP, PQ/SQ/RQ
and (optionally) COCO mask AP (definitions: ``docs/instance.md``), plus one row per image.
Training validation (:meth:`segwise.engine.instance_adapter.InstanceAdapter.validate`) and
``segwise evaluate`` both score with it, so the score that picks ``best.pt`` is the score
``segwise evaluate`` reports for it (COCO crowd regions are left out of the objects in both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["COCO_MAX_DETECTIONS", "InstanceEvalResult", "InstanceScorer", "overlay_maps"]

# COCO's maxDets is 100, but crowded images (DSB2018 has up to 375 nuclei per image) would
# then count only the 100 best detections; segwise.instance.coco reads AP at any limit.
COCO_MAX_DETECTIONS = 1000


@dataclass(frozen=True)
class InstanceEvalResult:
    """Scores of one instance evaluation pass.

    Attributes:
        metrics: :class:`~segwise.metrics.instance.InstanceMetricsResult` over the images.
        per_image: one ``{"id", "dsb_score", "ground_truth", "predicted"}`` row per image
            (this process's images only when distributed); ``ground_truth`` counts objects,
            crowd regions left out.
        overlays: ``(id, rgb, target, pred)`` of the first images (class maps with instance
            edges cut out, :func:`overlay_maps`), for pictures.
    """

    metrics: Any
    per_image: list[dict[str, Any]]
    overlays: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """The headline numbers training reports as ``val_<name>`` (higher is better):
        ``dsb_score``, ``ap50``, ``pq``, ``sq``, ``rq``, ``f1_50``."""
        m = self.metrics
        return {name: float(getattr(m, name))
                for name in ("dsb_score", "ap50", "pq", "sq", "rq", "f1_50")}


class InstanceScorer:
    """Instance metrics of predictions against an instance dataset's items.

    ``update(item, prediction)``: ``item["instances"]`` (the instance item contract, cleaned of
    instances the crop emptied) against an ``InstancePrediction`` of ``item["image"]``.

    Args:
        coco: also compute COCO mask AP (pycocotools; keeps every image's RLEs in memory).
        coco_max_detections: COCOeval's largest ``maxDets``.
        keep_overlays: how many images to keep for pictures.
        mean: normalisation mean (to draw the images); std: normalisation std.
    """

    def __init__(self, *, coco: bool = False, coco_max_detections: int = COCO_MAX_DETECTIONS,
                 keep_overlays: int = 0, mean: tuple[float, ...] = (0.0,),
                 std: tuple[float, ...] = (1.0,)) -> None:
        from segwise.metrics.instance import InstanceMetrics

        self.metrics = InstanceMetrics(coco=coco, coco_max_detections=coco_max_detections)
        self.per_image: list[dict[str, Any]] = []
        self.keep_overlays = keep_overlays
        self.mean, self.std = mean, std
        self.overlays: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, item: dict[str, Any], prediction: Any) -> None:
        from segwise.instance import InstancePrediction
        from segwise.metrics.instance import dsb_score, split_crowd
        from segwise.viz import denormalize

        # the dataset cleaned the instances (segwise.data.datasets.clean_instances, once)
        objects, crowd = split_crowd(item["instances"])  # COCO iscrowd
        target = InstancePrediction.from_target(objects)
        self.metrics.update(prediction, target, crowd=crowd)
        self.per_image.append({"id": item["id"],
                               "dsb_score": dsb_score(prediction, target, crowd=crowd),
                               "ground_truth": len(target), "predicted": len(prediction)})
        if len(self.overlays) < self.keep_overlays:
            rgb = denormalize(item["image"].numpy(), self.mean, self.std)
            self.overlays.append((item["id"], rgb, *overlay_maps(target, prediction)))

    def all_reduce(self) -> None:
        self.metrics.all_reduce()

    def compute(self) -> InstanceEvalResult:
        return InstanceEvalResult(self.metrics.compute(), list(self.per_image),
                                  list(self.overlays))


def overlay_maps(target: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Class maps of two :class:`~segwise.instance.InstancePrediction` with instance edges cut
    out (0), so touching instances stay apart in the class-palette overlays."""
    return _cut_edges(target), _cut_edges(pred)


def _cut_edges(p: Any) -> np.ndarray:
    inst = p.instance_map
    padded = np.pad(inst, 1, mode="edge")
    h, w = inst.shape
    edge = np.zeros(inst.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy : dy + h, dx : dx + w] != inst
    out = np.array(p.class_map, dtype=np.int64)
    out[edge] = 0
    return out
