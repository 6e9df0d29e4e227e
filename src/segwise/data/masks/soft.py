"""``SOFT`` masks: float masks in [0, 1] (float TIFF or ``.npy``), or a folder of several
annotators' masks of one image, averaged; the item's mask is ``float32 (K, H, W)``.

One channel is a binary task with soft targets; ``K > 1`` channels a multilabel task.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from segwise.data.classes import ClassTable, default_colors
from segwise.data.formats import MaskKind, read_mask_raw
from segwise.data.info import Sample
from segwise.data.masks.base import (
    ClassContext,
    ClassResult,
    FileCheck,
    label_problem,
    zero_counts,
)
from segwise.data.scan import ImageScan, MaskScan
from segwise.enums import Task
from segwise.labels import LabelSpace

__all__ = ["SOFT", "SoftMasks", "soft_target"]


def soft_target(raw: np.ndarray, source: str | Path) -> np.ndarray:
    """A stored soft mask as ``float32 (K, H, W)`` in [0, 1] (integer 0/255 masks scaled).

    Raises:
        ValueError: naming ``source`` when values fall outside [0, 1].
    """
    arr = raw
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32) / (255.0 if arr.max(initial=0) > 1 else 1.0)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[0] > arr.shape[-1]:
        arr = np.moveaxis(arr, -1, 0)
    arr = arr.astype(np.float32)
    if not (np.all(np.isfinite(arr)) and arr.min(initial=0) >= 0 and arr.max(initial=0) <= 1):
        raise ValueError(f"soft mask {source} has values outside [0, 1]; rescale it")
    return np.ascontiguousarray(arr)


class SoftMasks:
    """:class:`~segwise.data.masks.base.MaskKindSpec` of ``SOFT`` masks."""

    kind: ClassVar[MaskKind] = MaskKind.SOFT
    scans_files: ClassVar[bool] = True
    reads_lossy: ClassVar[bool] = False
    has_instances: ClassVar[bool] = False

    def detect(self, layout: str, samples: Sequence[Sample],
               scans: Sequence[MaskScan] | None) -> bool:
        if scans is None:  # annotator folders; .npy is not soft by its suffix, floats are
            return any(s.mask_path is not None and s.mask_path.is_dir() for s in samples)
        return any(s.float_range is not None for s in scans)

    def classes(self, ctx: ClassContext) -> ClassResult:
        k = max((s.channels for s in ctx.scans), default=1)
        task = Task.MULTILABEL if k > 1 else None
        if ctx.table is not None:
            return ClassResult(None, ctx.ignore_index, task=task)
        n = 2 if k == 1 else k
        names = ("background", "foreground") if n == 2 else tuple(f"class_{i}" for i in range(n))
        table = ClassTable(names, default_colors(n), None, None, "soft masks")
        return ClassResult(table, ctx.ignore_index, task=task)

    def check(self, sample: Sample, image: ImageScan | None, mask: MaskScan | None, *,
              table: ClassTable, ignore_index: int | None) -> FileCheck:
        counts = zero_counts(table)
        if mask is None:
            return FileCheck(counts)
        lo, hi = mask.float_range if mask.float_range is not None else (0.0, 1.0)
        if mask.float_range is None and mask.values.size:
            lo, hi = float(mask.values.min()), float(mask.values.max())
            if hi > 1:
                lo, hi = lo / 255.0, hi / 255.0  # 0/255 soft masks are scaled
        if not (lo >= 0.0 and hi <= 1.0):
            return FileCheck(counts, [label_problem(
                sample, f"soft values span [{lo}, {hi}], outside [0, 1]")])
        return FileCheck(counts)

    def read(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
             ) -> np.ndarray:
        return soft_target(read_mask_raw(path).array, path)


SOFT = SoftMasks()
