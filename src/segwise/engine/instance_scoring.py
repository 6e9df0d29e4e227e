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

__all__ = ["COCO_MAX_DETECTIONS", "WORST_ORDER", "InstanceEvalResult", "InstanceScorer",
           "overlay_maps", "worst_images"]

# COCO's maxDets is 100, but crowded images (DSB2018 has up to 375 nuclei per image) would
# then count only the 100 best detections; segwise.instance.coco reads AP at any limit.
COCO_MAX_DETECTIONS = 1000

#: how :func:`worst_images` ranks (printed in the report and in docs/instance.md)
WORST_ORDER = ("lowest DSB score first; ties broken by the number of ground-truth objects, "
               "more first (a miss on a crowded image costs more objects), then by image id")


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
        pixels: ``(background, objects)`` pixels of the predictions (any class counts as an
            object); true_pixels: the same of the ground truth (crowd regions count as
            objects). This process's images only when distributed, as ``per_image``.
    """

    metrics: Any
    per_image: list[dict[str, Any]]
    overlays: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    pixels: tuple[int, int] = (0, 0)
    true_pixels: tuple[int, int] = (0, 0)

    def summary(self) -> dict[str, float]:
        """The headline numbers training reports as ``val_<name>`` (higher is better):
        ``dsb_score``, ``ap50``, ``pq``, ``sq``, ``rq``, ``f1_50``."""
        m = self.metrics
        return {name: float(getattr(m, name))
                for name in ("dsb_score", "ap50", "pq", "sq", "rq", "f1_50")}

    def census(self) -> dict[str, list[int]]:
        """What was predicted, for :func:`segwise.engine.hints.degenerate_prediction_hint`:
        objects per image (predicted and true) and (background, objects) pixels."""
        return {"objects_per_image": [row["predicted"] for row in self.per_image],
                "true_objects_per_image": [row["ground_truth"] for row in self.per_image],
                "pixels_per_class": list(self.pixels),
                "true_pixels_per_class": list(self.true_pixels)}


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
        self.pixels = np.zeros(2, dtype=np.int64)  # (background, objects) predicted
        self.true_pixels = np.zeros(2, dtype=np.int64)  # the same in the ground truth

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
        self._count_pixels(target, prediction, crowd)
        if len(self.overlays) < self.keep_overlays:
            rgb = denormalize(item["image"].numpy(), self.mean, self.std)
            self.overlays.append((item["id"], rgb, *overlay_maps(target, prediction)))

    def _count_pixels(self, target: Any, prediction: Any, crowd: Any) -> None:
        size = int(np.prod(prediction.shape))
        found = int(np.count_nonzero(prediction.instance_map))
        true = target.instance_map > 0
        if crowd is not None and len(crowd.masks):
            true = true | np.asarray(crowd.masks, dtype=bool).any(axis=0)
        objects = int(np.count_nonzero(true))
        self.pixels += (size - found, found)
        self.true_pixels += (true.size - objects, objects)

    def all_reduce(self) -> None:
        self.metrics.all_reduce()

    def compute(self) -> InstanceEvalResult:
        return InstanceEvalResult(
            self.metrics.compute(), list(self.per_image), list(self.overlays),
            pixels=(int(self.pixels[0]), int(self.pixels[1])),
            true_pixels=(int(self.true_pixels[0]), int(self.true_pixels[1])),
        )


def worst_images(per_image: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The ``k`` worst rows of :attr:`InstanceEvalResult.per_image` (:data:`WORST_ORDER`).

    Many images of an undertrained model score 0, so the DSB score alone ties them; the
    crowded ones come first, then the order is the id's (as text), so the list is the same on
    every run.

    Args:
        per_image: ``{"id", "dsb_score", "ground_truth", ...}`` rows.
        k: how many (``<= 0``: none).
    """
    ranked = sorted(per_image,
                    key=lambda r: (r["dsb_score"], -int(r["ground_truth"]), str(r["id"])))
    return ranked[: max(0, k)]


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
