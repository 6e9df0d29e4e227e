"""Crowd regions (COCO ``iscrowd: 1``) for the instance metrics (`segwise.metrics.instance`).

A crowd region outlines a group of objects nobody outlined one by one. pycocotools' COCOeval
never counts it as a missed object, and a detection matched to it (IoU computed as intersection
over the detection's area, ``maskUtils.iou`` with ``iscrowd=1``) is neither a TP nor a FP; the
DSB score, ``AP_t`` and PQ here follow the same rule (see `segwise.metrics.instance`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from segwise.instance.matching import Overlap

__all__ = ["CrowdRegions", "crowd_ignored", "split_crowd"]


@dataclass(frozen=True, eq=False)
class CrowdRegions:
    """The crowd regions (COCO ``iscrowd: 1``) of one image.

    Attributes:
        masks: ``bool (R, H, W)``, one region each (regions may overlap).
        labels: ``int64 (R,)`` classes >= 1.
    """

    masks: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        masks = _numpy(self.masks).astype(bool)
        labels = _numpy(self.labels).astype(np.int64).reshape(-1)
        if masks.ndim != 3 or labels.shape != (len(masks),):
            raise ValueError(f"crowd regions: masks {masks.shape} and labels {labels.shape}; "
                             "expected bool (R, H, W) and (R,)")
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "labels", labels)

    @classmethod
    def of(cls, value: Any) -> CrowdRegions | None:
        """A :class:`CrowdRegions`, ``{"masks": (R, H, W), "labels": (R,)}``, a ``bool (R, H,
        W)`` array (class 1 each) or ``None``; ``None`` when there is no region."""
        if value is None:
            return None
        if not isinstance(value, CrowdRegions):
            if isinstance(value, Mapping):
                value = CrowdRegions(value["masks"], value.get(
                    "labels", np.ones(len(value["masks"]), dtype=np.int64)))
            else:
                arr = _numpy(value)
                value = CrowdRegions(arr, np.ones(len(arr), dtype=np.int64))
        return value if len(value.masks) else None


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def split_crowd(instances: Mapping[str, Any]) -> tuple[dict[str, Any], CrowdRegions | None]:
    """Split the dataset item's ``"instances"`` into the objects and the crowd regions.

    Args:
        instances: ``{"masks": (K, H, W), "labels": (K,), "ids": (K,), "crowd": bool (K,)
            optional, ...}`` (numpy or tensors).

    Returns:
        ``(objects, crowd)``: the same dict without the crowd regions (and without
        ``"crowd"``), and the :class:`CrowdRegions`, or ``None`` when there is none.
    """
    flags = instances.get("crowd")
    rest = {k: v for k, v in instances.items() if k != "crowd"}
    if flags is None:
        return rest, None
    flags = _numpy(flags).astype(bool).reshape(-1)
    if not flags.any():
        return rest, None
    keep = ~flags
    objects = {k: (v[keep] if k in ("masks", "labels", "ids", "boxes", "scores") else v)
               for k, v in rest.items()}
    return objects, CrowdRegions(_numpy(instances["masks"])[flags],
                                 _numpy(instances["labels"])[flags])


def crowd_ignored(ov: Overlap, best: np.ndarray | None, matched: np.ndarray, t: float) -> int:
    """Unmatched predictions with more than ``t`` of their area inside one crowd region.

    Args:
        ov: the overlap table of the image.
        best: ``(P,)`` each prediction's largest share inside one crowd region
            (`segwise.instance.matching.crowd_fraction`, max over regions), or ``None``.
        matched: indices of the predictions matched to an object at ``t``.
        t: the IoU threshold.
    """
    if best is None:
        return 0
    free = np.ones(ov.num_pred, dtype=bool)
    free[matched] = False
    return int((free & (best > t)).sum())
