"""``INSTANCE`` masks: uint16 instance-label images, 0 = background, 1..N one object each
(ids need not be contiguous; inspect notes it). Per-instance classes come from an optional
sidecar ``<mask stem>.json`` (:func:`segwise.data.instances.read_instance_classes`); without
it every object is class 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from segwise.data.classes import ClassTable, default_colors
from segwise.data.formats import MaskKind, read_mask_raw
from segwise.data.info import Problem, Sample, Severity
from segwise.data.instances import (
    instances_from_label,
    read_instance_classes,
    semantic_from_instances,
)
from segwise.data.masks.base import (
    ClassContext,
    ClassResult,
    FileCheck,
    ReadOptions,
    label_problem,
    zero_counts,
)
from segwise.data.scan import ImageScan, MaskScan

__all__ = ["INSTANCE", "InstanceMasks"]


class InstanceMasks:
    """:class:`~segwise.data.masks.base.MaskKindSpec` of ``INSTANCE`` masks."""

    kind: ClassVar[MaskKind] = MaskKind.INSTANCE
    scans_files: ClassVar[bool] = True
    reads_lossy: ClassVar[bool] = False
    has_instances: ClassVar[bool] = True

    def detect(self, layout: str, samples: Sequence[Sample],
               scans: Sequence[MaskScan] | None) -> bool:
        return layout == "images+instances"

    def classes(self, ctx: ClassContext) -> ClassResult:
        if ctx.table is not None:
            return ClassResult(None, ctx.ignore_index)
        table = ClassTable(("background", "foreground"), default_colors(2), None, None,
                           "instance masks")
        return ClassResult(table, ctx.ignore_index)

    def check(self, sample: Sample, image: ImageScan | None, mask: MaskScan | None, *,
              table: ClassTable, ignore_index: int | None) -> FileCheck:
        counts = zero_counts(table)
        if mask is None:
            return FileCheck(counts)
        n = len(table.names)
        problems = []
        ids = [int(v) for v in mask.values.tolist() if v > 0]
        if ids and ids != list(range(1, len(ids) + 1)):
            problems.append(Problem(Severity.INFO, "noncontiguous_ids", str(sample.mask_path),
                                    f"instance ids are not 1..{len(ids)} (e.g. {ids[:6]}); "
                                    "they are kept as they are"))
        try:
            classes = read_instance_classes(sample.mask_path)
        except ValueError as err:
            return FileCheck(counts, [*problems, label_problem(sample, str(err))],
                             objects=len(ids))
        for v, c in zip(mask.values.tolist(), mask.counts.tolist(), strict=True):
            cls = 0 if v == 0 else (1 if classes is None else classes.get(int(v), -1))
            if not 0 <= cls < n:
                problems.append(label_problem(
                    sample, f"instance {v} has class {cls}, not in 1..{n - 1} (sidecar .json)"))
                continue
            counts[cls] += c
        return FileCheck(counts, problems, objects=len(ids))

    def read(self, path: Path, options: ReadOptions, *, image_name: str | None = None
             ) -> np.ndarray:
        return semantic_from_instances(read_mask_raw(path).array, read_instance_classes(path),
                                       source=path)

    def read_instances(self, path: Path, options: ReadOptions, *, image_name: str | None = None
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The Instance item (numpy) and the semantic mask of one file."""
        raw = read_mask_raw(path).array
        classes = read_instance_classes(path)
        return (instances_from_label(raw, classes),
                semantic_from_instances(raw, classes, source=path))


INSTANCE = InstanceMasks()
