"""``INSTANCE`` masks: uint16 instance-label images, 0 = background, 1..N one object each
(ids need not be contiguous; inspect notes it), or colour-coded RGB images: each distinct
colour is one object, black (0, 0, 0) the background (:func:`segwise.data.instances.
instance_label`, the one rule the check and the reader share). Per-instance classes come from an
optional sidecar ``<mask stem>.json`` (:func:`segwise.data.instances.read_instance_classes`);
without it every object is class 1.
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
    instance_label,
    instances_from_label,
    read_instance_classes,
    semantic_from_instances,
)
from segwise.data.masks.base import (
    ClassContext,
    ClassResult,
    FileCheck,
    label_problem,
    zero_counts,
)
from segwise.data.scan import ImageScan, MaskScan
from segwise.labels import LabelSpace

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
        coloured = mask.channels == 3  # colour codes r << 16 | g << 8 | b, as instance_label
        if coloured:
            problems += _colour_notes(sample, mask, len(ids))
        elif ids and ids != list(range(1, len(ids) + 1)):
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
                name = f"#{int(v):06x}" if coloured else str(v)
                problems.append(label_problem(
                    sample, f"instance {name} has class {cls}, not in 1..{n - 1} "
                    "(sidecar .json)"))
                continue
            counts[cls] += c
        return FileCheck(counts, problems, objects=len(ids))

    def read(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
             ) -> np.ndarray:
        label = instance_label(read_mask_raw(path).array, source=path)
        return semantic_from_instances(label, read_instance_classes(path), source=path)

    def read_instances(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The Instance item (numpy) and the semantic mask of one file."""
        label = instance_label(read_mask_raw(path).array, source=path)
        classes = read_instance_classes(path)
        return (instances_from_label(label, classes),
                semantic_from_instances(label, classes, source=path))


def _colour_notes(sample: Sample, mask: MaskScan, objects: int) -> list[Problem]:
    """A colour-coded instance mask: a notice of the rule, and a warning when it has no black
    background but one colour covers most of it (a background of another colour)."""
    notes = [Problem(Severity.INFO, "instance_colors", str(sample.mask_path),
                     f"colour-coded instance mask: {objects} objects, one per colour, black "
                     "(0, 0, 0) the background; ids are r*65536 + g*256 + b")]
    total = int(mask.counts.sum())
    top = int(np.argmax(mask.counts)) if mask.counts.size else 0
    if mask.values.size and 0 not in mask.values.tolist() and 2 * mask.counts[top] > total:
        c = int(mask.values[top])
        notes.append(Problem(
            Severity.WARNING, "instance_background", str(sample.mask_path),
            f"no black pixel, and colour ({c >> 16}, {(c >> 8) & 255}, {c & 255}) covers "
            f"{100 * mask.counts[top] / total:.0f}% of the mask: it is read as one object; the "
            "background of a colour-coded instance mask must be black (0, 0, 0): re-export it"))
    return notes


INSTANCE = InstanceMasks()
