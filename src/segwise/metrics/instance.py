"""Instance-segmentation metrics: DSB2018 score, AP at an IoU (StarDist sense), PQ, COCO mask AP.

Every number is defined in ``docs/instance.md``. In short, for one image at IoU threshold ``t``
(matching: `segwise.instance.matching`, ``IoU > t``, one-to-one):

- ``AP_t = TP / (TP + FP + FN)``; an image with neither ground truth nor prediction scores 1;
- DSB2018 score = mean of ``AP_t`` over ``t = 0.50, 0.55, ..., 0.95``, then mean over images;
- PQ per class (Kirillov et al.) from TP/FP/FN and matched IoUs summed over all images, matching
  at IoU > 0.5 within a class; ``PQ = SQ * RQ``; the mean PQ is over classes with any instance;
- COCO mask AP/AP50/AP75/small/medium/large through pycocotools' COCOeval.

Crowd regions (COCO ``iscrowd: 1``; :class:`CrowdRegions`, or the ``"crowd"`` flags of the
dataset item's ``"instances"``) are scored as pycocotools scores them: a crowd region is never
a ground-truth object (no FN), and a prediction left unmatched by the objects but lying inside
a crowd region is neither TP nor FP. "Inside" compares ``|p & r| / |p|`` (intersection over the
prediction's area, `segwise.instance.matching.crowd_fraction`) with the same threshold as the
objects: ``> t`` for ``AP_t`` and the DSB score (per region, as COCOeval), ``> 0.5`` against
the union of the crowd regions of the prediction's class for PQ (as the COCO panoptic API);
COCO AP hands the regions to COCOeval with ``iscrowd=1``.

`InstanceMetrics` accumulates all of them image by image; `compute()` returns a frozen
`InstanceMetricsResult`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from segwise.instance.matching import crowd_fraction, match_pairs, overlap
from segwise.instance.representation import InstancePrediction
from segwise.metrics.crowd import CrowdRegions, crowd_ignored, split_crowd

__all__ = [
    "DSB_THRESHOLDS",
    "CrowdRegions",
    "InstanceMetrics",
    "InstanceMetricsResult",
    "PanopticCounts",
    "average_precision",
    "dsb_score",
    "panoptic_counts",
    "panoptic_quality",
    "split_crowd",
]

#: the DSB2018 IoU thresholds 0.50:0.05:0.95
DSB_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _is_batch(value: Any) -> bool:
    if isinstance(value, InstancePrediction):
        return False
    if isinstance(value, (list, tuple)):
        return True
    return getattr(value, "ndim", 2) == 3


def _as_instances(value: InstancePrediction | np.ndarray, name: str) -> InstancePrediction:
    if isinstance(value, InstancePrediction):
        return value
    if hasattr(value, "detach"):  # a tensor
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} has shape {arr.shape}; expected an (H, W) instance label map or an "
            "InstancePrediction"
        )
    return InstancePrediction.from_label_map(arr)


def _map(value: InstancePrediction | np.ndarray) -> np.ndarray:
    return _as_instances(value, "label map").instance_map


def _as_target(value: Any, crowd: Any) -> tuple[InstancePrediction, CrowdRegions | None]:
    """Ground truth and crowd regions from a target (an ``"instances"`` dict is split)."""
    crowd = CrowdRegions.of(crowd)
    if isinstance(value, Mapping):
        value, found = split_crowd(value)
        if found is not None and crowd is not None:
            raise ValueError("crowd regions given twice (the target's 'crowd' flags and "
                             "crowd=); pass one of them")
        crowd = crowd or found
        value = InstancePrediction.from_target(value)
    gt = _as_instances(value, "target")
    if crowd is not None and crowd.masks.shape[1:] != gt.shape:
        raise ValueError(f"crowd regions have size {crowd.masks.shape[1:]} and the target "
                         f"{gt.shape}; expected equal")
    return gt, crowd


def average_precision(
    pred: InstancePrediction | np.ndarray,
    target: InstancePrediction | np.ndarray,
    *,
    thresholds: Sequence[float] = DSB_THRESHOLDS,
    crowd: Any = None,
) -> np.ndarray:
    """Per-threshold ``TP / (TP + FP + FN)`` of one image (the DSB2018 / StarDist "AP").

    Class-agnostic. An image with no ground truth and no prediction scores 1 at every threshold;
    one side empty and the other not scores 0.

    Args:
        pred: ``(H, W)`` predicted instance map (or `InstancePrediction`).
        target: ``(H, W)`` ground-truth instance map (or `InstancePrediction`, or the item's
            ``"instances"`` dict, whose crowd regions are split off).
        thresholds: IoU thresholds in [0, 1).
        crowd: the image's crowd regions (:meth:`CrowdRegions.of`); a prediction inside one
            (share ``> t``) that no object matched is neither TP nor FP.

    Returns:
        ``float64 (T,)``.
    """
    gt, regions = _as_target(target, crowd)
    pr = _as_instances(pred, "pred")
    return _ap_row(overlap(gt.instance_map, pr.instance_map), pr, regions, thresholds)[0]


def _ap_row(ov: Any, pr: InstancePrediction, crowd: CrowdRegions | None,
            thresholds: Sequence[float]) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """``AP_t`` per threshold, and per threshold ``(TP, scored predictions, matched IoUs)``."""
    best = None  # (P,) the largest share of each prediction inside one crowd region
    if crowd is not None and ov.num_pred:
        best = crowd_fraction(ov, pr.instance_map, crowd.masks).max(axis=0)
    row = np.empty(len(thresholds))
    counts = []
    for i, t in enumerate(thresholds):
        _, pj, iou = match_pairs(ov, t)
        tp = len(iou)
        num_pred = ov.num_pred - crowd_ignored(ov, best, pj, t)  # crowd: neither TP nor FP
        denom = ov.num_gt + num_pred - tp  # TP + FP + FN
        row[i] = 1.0 if denom == 0 else tp / denom
        counts.append((tp, num_pred, iou))
    return row, counts


def dsb_score(
    pred: InstancePrediction | np.ndarray, target: Any, *, crowd: Any = None
) -> float:
    """The DSB2018 score of one image: mean ``AP_t`` over ``t = 0.50:0.05:0.95`` (``target``
    and ``crowd`` as in :func:`average_precision`)."""
    return float(average_precision(pred, target, thresholds=DSB_THRESHOLDS, crowd=crowd).mean())


@dataclass
class PanopticCounts:
    """Per-class TP/FP/FN and summed matched IoU (mutable, for accumulation).

    Attributes:
        tp, fp, fn: ``{class: count}``.
        iou_sum: ``{class: sum of IoU over matched pairs}``.
    """

    tp: dict[int, int] = field(default_factory=dict)
    fp: dict[int, int] = field(default_factory=dict)
    fn: dict[int, int] = field(default_factory=dict)
    iou_sum: dict[int, float] = field(default_factory=dict)

    def add(self, other: PanopticCounts) -> None:
        for name in ("tp", "fp", "fn", "iou_sum"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for c, v in theirs.items():
                mine[c] = mine.get(c, 0) + v

    @property
    def classes(self) -> list[int]:
        return sorted(set(self.tp) | set(self.fp) | set(self.fn))


def panoptic_counts(
    pred: InstancePrediction, target: InstancePrediction, *, crowd: Any = None
) -> PanopticCounts:
    """TP/FP/FN and matched-IoU sums per class for one image (match: same class, IoU > 0.5).

    Args:
        pred: the prediction.
        target: the ground-truth objects (crowd regions left out).
        crowd: the image's :class:`CrowdRegions` (or what :meth:`CrowdRegions.of` takes): an
            unmatched prediction of class ``c`` with more than half of its area inside the
            union of the class-``c`` crowd regions is not a FP (COCO panoptic API).
    """
    gt = target
    ov = overlap(gt.instance_map, pred.instance_map)
    gt_cls = gt.labels[np.searchsorted(gt.ids, ov.gt_ids)] if len(ov.gt_ids) else gt.labels
    pr_cls = (
        pred.labels[np.searchsorted(pred.ids, ov.pred_ids)] if len(ov.pred_ids) else pred.labels
    )
    same = gt_cls[ov.gt_index] == pr_cls[ov.pred_index]
    gi, pj, iou = match_pairs(ov, 0.5, allowed=same)
    counts = PanopticCounts()
    classes = np.union1d(gt_cls, pr_cls).astype(np.int64)
    for c in classes:
        c = int(c)
        hit = gt_cls[gi] == c
        tp = int(hit.sum())
        counts.tp[c] = tp
        counts.fn[c] = int((gt_cls == c).sum()) - tp
        counts.fp[c] = int((pr_cls == c).sum()) - tp
        counts.iou_sum[c] = float(iou[hit].sum())
    crowd = CrowdRegions.of(crowd)
    if crowd is not None and ov.num_pred:
        free = np.ones(ov.num_pred, dtype=bool)
        free[pj] = False
        for c in np.unique(crowd.labels).tolist():
            union = crowd.masks[crowd.labels == c].any(axis=0)[None]
            inside = crowd_fraction(ov, pred.instance_map, union)[0] > 0.5
            ignored = int((free & inside & (pr_cls == c)).sum())
            if ignored:
                counts.fp[c] -= ignored
    return counts


def panoptic_quality(counts: PanopticCounts) -> dict[str, Any]:
    """PQ, SQ, RQ per class and their means (Kirillov et al. 2019).

    ``SQ = sum IoU / TP`` (0 if TP = 0), ``RQ = TP / (TP + FP/2 + FN/2)``, ``PQ = SQ * RQ``.
    Means are over classes with ``TP + FP + FN > 0``; ``nan`` if there is none.

    Returns:
        ``{"pq", "sq", "rq": float, "per_class": {class: {"pq", "sq", "rq", "tp", "fp", "fn"}}}``.
    """
    per_class: dict[int, dict[str, float]] = {}
    for c in counts.classes:
        tp, fp, fn = counts.tp.get(c, 0), counts.fp.get(c, 0), counts.fn.get(c, 0)
        if tp + fp + fn == 0:
            continue
        sq = counts.iou_sum.get(c, 0.0) / tp if tp else 0.0
        rq = tp / (tp + 0.5 * fp + 0.5 * fn)
        per_class[c] = {"pq": sq * rq, "sq": sq, "rq": rq, "tp": tp, "fp": fp, "fn": fn}
    if not per_class:
        nan = float("nan")
        return {"pq": nan, "sq": nan, "rq": nan, "per_class": {}}
    mean = {k: float(np.mean([v[k] for v in per_class.values()])) for k in ("pq", "sq", "rq")}
    return {**mean, "per_class": per_class}


@dataclass(frozen=True)
class InstanceMetricsResult:
    """Results of `InstanceMetrics.compute` (definitions: ``docs/instance.md``).

    Attributes:
        num_images: images accumulated.
        dsb_score: DSB2018 score (mean over images of mean ``AP_t`` over the thresholds).
        ap_per_threshold: ``((t, mean over images of AP_t), ...)``.
        ap50: ``AP_0.5`` averaged over images (StarDist / DSB sense).
        precision50, recall50, f1_50: dataset-level ``TP/(TP+FP)``, ``TP/(TP+FN)`` and F1 at
            IoU > 0.5 from summed counts (``nan`` when undefined).
        mean_matched_iou50: mean IoU of the pairs matched at IoU > 0.5 (``nan`` if none).
        pq, sq, rq: Panoptic Quality and its factors, mean over classes.
        pq_per_class: ``{class: {"pq", "sq", "rq", "tp", "fp", "fn"}}``.
        coco: COCO mask AP stats ``{"ap", "ap50", "ap75", "ap_small", "ap_medium",
            "ap_large"}``, or ``None`` when COCO evaluation was not requested.
    """

    num_images: int
    dsb_score: float
    ap_per_threshold: tuple[tuple[float, float], ...]
    ap50: float
    precision50: float
    recall50: float
    f1_50: float
    mean_matched_iou50: float
    pq: float
    sq: float
    rq: float
    pq_per_class: dict[int, dict[str, float]]
    coco: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-friendly dict (``ap@0.55``, ``pq/class_1``, ``coco/ap50``, ...)."""
        out: dict[str, Any] = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("ap_per_threshold", "pq_per_class", "coco")
        }
        for t, v in self.ap_per_threshold:
            out[f"ap@{t:.2f}"] = v
        for c, vals in self.pq_per_class.items():
            for k in ("pq", "sq", "rq"):
                out[f"{k}/class_{c}"] = vals[k]
        if self.coco is not None:
            for k, v in self.coco.items():
                out[f"coco/{k}"] = v
        return out


class InstanceMetrics:
    """Streaming instance metrics: ``update`` per image, ``compute``, ``reset``, ``merge``.

    Args:
        thresholds: IoU thresholds of the DSB score (default 0.50:0.05:0.95; 0.5 must be in it).
        coco: also compute COCO mask AP (needs pycocotools; keeps every image's RLEs in memory).
        coco_max_detections: COCOeval's largest ``maxDets`` (100 in COCO; use ~1000 for
            crowded images such as nuclei).

    Example:
        >>> metrics = InstanceMetrics()
        >>> metrics.update(prediction, gt_label_map)  # doctest: +SKIP
        >>> metrics.compute().dsb_score  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        thresholds: Sequence[float] = DSB_THRESHOLDS,
        coco: bool = False,
        coco_max_detections: int = 100,
    ) -> None:
        self.thresholds = tuple(float(t) for t in thresholds)
        if 0.5 not in self.thresholds or any(not 0 <= t < 1 for t in self.thresholds):
            raise ValueError(
                f"thresholds={self.thresholds}; expected IoU thresholds in [0, 1) including 0.5"
            )
        if coco_max_detections < 1:
            raise ValueError(f"coco_max_detections={coco_max_detections!r}; expected an int >= 1")
        self.coco = bool(coco)
        self.coco_max_detections = int(coco_max_detections)
        self.reset()

    def reset(self) -> None:
        """Forget every image."""
        self._ap_rows: list[np.ndarray] = []
        self._tp50 = self._fp50 = self._fn50 = 0
        self._iou50_sum = 0.0
        self._pq = PanopticCounts()
        self._coco_gt: list[list[dict[str, Any]]] = []
        self._coco_dt: list[list[dict[str, Any]]] = []
        self._shapes: list[tuple[int, int]] = []

    def update(
        self,
        pred: InstancePrediction | np.ndarray | Sequence[InstancePrediction | np.ndarray],
        target: Any,
        *,
        crowd: Any = None,
    ) -> None:
        """Add one image, or a batch (sequences of equal length, or ``(N, H, W)`` arrays).

        Args:
            pred: the prediction, an `InstancePrediction` or an ``(H, W)`` instance map.
            target: ground truth: the dataset item's ``"instances"`` dict (its ``"crowd"``
                flags, COCO ``iscrowd``, are split off as crowd regions), an
                `InstancePrediction` (e.g. ``InstancePrediction.from_target(objects)``) or an
                ``(H, W)`` instance map (every instance class 1).
            crowd: the image's crowd regions when ``target`` does not carry them: a
                :class:`CrowdRegions`, ``{"masks": bool (R, H, W), "labels": (R,)}`` or a
                ``bool (R, H, W)`` array (class 1); a sequence of them for a batch. Scored
                as pycocotools does (module docstring); ``None``: no crowd region.
        """
        if _is_batch(pred) or _is_batch(target):
            preds, targets = list(pred), list(target)  # type: ignore[arg-type]
            crowds = [None] * len(targets) if crowd is None else list(crowd)
            if len(preds) != len(targets) or len(crowds) != len(targets):
                raise ValueError(
                    f"pred has {len(preds)} images and target {len(targets)}"
                    + ("" if crowd is None else f" and crowd {len(crowds)}") + "; expected equal"
                )
            for p, t, c in zip(preds, targets, crowds, strict=True):
                self.update(p, t, crowd=c)
            return
        pr = _as_instances(pred, "pred")
        gt, crowd = _as_target(target, crowd)
        if gt.shape != pr.shape:
            raise ValueError(f"pred has shape {pr.shape} and target {gt.shape}; expected equal")
        ov = overlap(gt.instance_map, pr.instance_map)
        row, counts = _ap_row(ov, pr, crowd, self.thresholds)
        tp, num_pred, iou = counts[self.thresholds.index(0.5)]
        self._tp50 += tp
        self._fp50 += num_pred - tp
        self._fn50 += ov.num_gt - tp
        self._iou50_sum += float(iou.sum())
        self._ap_rows.append(row)
        self._pq.add(panoptic_counts(pr, gt, crowd=crowd))
        if self.coco:
            from segwise.instance.coco import encode_rle

            self._shapes.append(gt.shape)
            self._coco_gt.append(
                [
                    {"segmentation": r, "category_id": int(c)}
                    for r, c in zip(gt.to_rle(), gt.labels, strict=True)
                ]
                + ([] if crowd is None else [
                    {"segmentation": r, "category_id": int(c), "iscrowd": True}
                    for r, c in zip(encode_rle(crowd.masks), crowd.labels, strict=True)
                ])
            )
            self._coco_dt.append(
                [
                    {"segmentation": r, "category_id": int(c), "score": float(s)}
                    for r, c, s in zip(pr.to_rle(), pr.labels, pr.scores, strict=True)
                ]
            )

    def merge(self, other: InstanceMetrics) -> InstanceMetrics:
        """Add another accumulator's images (same thresholds and coco flag); returns ``self``."""
        if other.thresholds != self.thresholds or other.coco != self.coco:
            raise ValueError(
                f"cannot merge InstanceMetrics(thresholds={other.thresholds}, coco={other.coco}) "
                f"into thresholds={self.thresholds}, coco={self.coco}; expected the same settings"
            )
        self.load_state_dict(other.state_dict(), add=True)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Everything accumulated, as builtin types (picklable, JSON-friendly)."""
        return {
            "thresholds": list(self.thresholds),
            "coco": self.coco,
            "ap_rows": [row.tolist() for row in self._ap_rows],
            "counts50": [self._tp50, self._fp50, self._fn50],
            "iou50_sum": self._iou50_sum,
            "pq": {
                name: {str(c): v for c, v in getattr(self._pq, name).items()}
                for name in ("tp", "fp", "fn", "iou_sum")
            },
            "coco_gt": self._coco_gt,
            "coco_dt": self._coco_dt,
            "shapes": [list(shape) for shape in self._shapes],
        }

    def load_state_dict(self, state: Mapping[str, Any], *, add: bool = False) -> None:
        """Restore a `state_dict` (``add=True``: add it to what is already accumulated)."""
        if tuple(state["thresholds"]) != self.thresholds or bool(state["coco"]) != self.coco:
            raise ValueError(
                f"state has thresholds={state['thresholds']}, coco={state['coco']}; expected "
                f"{list(self.thresholds)}, coco={self.coco}"
            )
        if not add:
            self.reset()
        self._ap_rows.extend(np.asarray(row, dtype=np.float64) for row in state["ap_rows"])
        tp, fp, fn = state["counts50"]
        self._tp50 += int(tp)
        self._fp50 += int(fp)
        self._fn50 += int(fn)
        self._iou50_sum += float(state["iou50_sum"])
        self._pq.add(
            PanopticCounts(
                **{
                    name: {int(c): v for c, v in state["pq"][name].items()}
                    for name in ("tp", "fp", "fn", "iou_sum")
                }
            )
        )
        self._coco_gt.extend(state["coco_gt"])
        self._coco_dt.extend(state["coco_dt"])
        self._shapes.extend(tuple(shape) for shape in state["shapes"])

    def all_reduce(self) -> InstanceMetrics:
        """Gather every process's images into each process (no-op outside torch.distributed).

        Uses ``all_gather_object``, so the states travel pickled; returns ``self``.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        states: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(states, self.state_dict())
        self.reset()
        for state in states:
            self.load_state_dict(state, add=True)
        return self

    def compute(self) -> InstanceMetricsResult:
        """The metrics over every image added so far (``nan`` everywhere if none)."""
        nan = float("nan")
        n = len(self._ap_rows)
        ap = np.mean(self._ap_rows, axis=0) if n else np.full(len(self.thresholds), nan)
        tp, fp, fn = self._tp50, self._fp50, self._fn50
        precision = tp / (tp + fp) if tp + fp else nan
        recall = tp / (tp + fn) if tp + fn else nan
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan
        pq = panoptic_quality(self._pq)
        coco = None
        if self.coco:
            from segwise.instance.coco import coco_mask_ap

            coco = coco_mask_ap(
                self._coco_gt,
                self._coco_dt,
                shapes=self._shapes,
                max_detections=self.coco_max_detections,
            )
        return InstanceMetricsResult(
            num_images=n,
            dsb_score=float(ap.mean()) if n else nan,
            ap_per_threshold=tuple((t, float(v)) for t, v in zip(self.thresholds, ap, strict=True)),
            ap50=float(ap[self.thresholds.index(0.5)]),
            precision50=precision,
            recall50=recall,
            f1_50=f1,
            mean_matched_iou50=self._iou50_sum / tp if tp else nan,
            pq=pq["pq"],
            sq=pq["sq"],
            rq=pq["rq"],
            pq_per_class=pq["per_class"],
            coco=coco,
        )
