"""``INDEX`` masks: one channel of class indices (uint8/uint16 PNG or TIFF, integer ``.npy``).

Detected when no other kind claims the scanned files (the last entry of the table). Value 255
next to small class indices is read as "ignore" (PASCAL VOC's void,
:data:`segwise.labels.VOC_VOID_LABEL`) unless an ignore label is given; the number of classes
is ``max label + 1`` unless given (a notice says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from segwise.data.classes import ClassTable, default_colors
from segwise.data.formats import MaskKind, read_mask_raw
from segwise.data.info import Problem, Sample, Severity
from segwise.data.masks.base import (
    ClassContext,
    ClassResult,
    FileCheck,
    label_problem,
    zero_counts,
)
from segwise.data.scan import ImageScan, MaskScan
from segwise.labels import VOC_VOID_LABEL, LabelSpace

__all__ = ["INDEX", "IndexMasks", "as_labels", "binary_strays", "check_labels",
           "labels_in_range"]


def as_labels(raw: np.ndarray, source: str | Path) -> np.ndarray:
    """A stored label mask as ``int64 (H, W)`` (grey masks saved as RGB: first channel).

    Raises:
        ValueError: naming ``source`` for a wrong shape or fractional values.
    """
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):
        raw = raw[..., 0]  # grey masks saved as RGB: the scan checked the channels are equal
    if raw.ndim != 2:
        raise ValueError(f"mask {source} has shape {raw.shape}; expected (H, W) labels")
    if np.issubdtype(raw.dtype, np.floating) and (
        not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw))
    ):
        raise ValueError(
            f"mask {source} holds fractional values; use mask_kind='soft' for soft masks")
    return raw.astype(np.int64)


def labels_in_range(out: np.ndarray, labels: LabelSpace, source: str | Path) -> np.ndarray:
    """``out`` unchanged when every value is a class or the ignore label.

    Raises:
        ValueError: naming ``source`` and up to 10 bad values.
    """
    n, ignore = labels.num_classes, labels.ignore_index
    bad = (out < 0) | (out >= n)
    if ignore is not None:
        bad &= out != ignore
    if bad.any():
        vals = np.unique(out[bad])[:10].tolist()
        raise ValueError(
            f"mask {source} holds label values {vals} outside [0, {n}) "
            f"(ignore_index={ignore}); set num_classes / ignore_index or fix the file"
        )
    return out


def check_labels(sample: Sample, mask: MaskScan, *, table: ClassTable,
                 ignore_index: int | None) -> FileCheck:
    """Class-index values of one scanned mask: pixels per class, ignored pixels, bad values."""
    n = len(table.names)
    counts = zero_counts(table)
    allowed = set(range(n)) | ({ignore_index} if ignore_index is not None else set())
    problems = []
    bad = [int(v) for v in mask.values.tolist() if int(v) not in allowed]
    if bad:
        problems.append(label_problem(
            sample, f"unexpected label values {bad[:10]}; expected 0..{n - 1}"
            + (f" or {ignore_index} (ignore)" if ignore_index is not None else "")))
    ignored = 0
    for v, c in zip(mask.values.tolist(), mask.counts.tolist(), strict=True):
        if v == ignore_index:
            ignored += c
        elif 0 <= v < n:
            counts[v] += c
    return FileCheck(counts, problems, ignored)


def infer_index_classes(ctx: ClassContext) -> ClassResult:
    """Classes of index/palette masks without a class file (shared by ``PALETTE``)."""
    if ctx.table is not None:
        return ClassResult(None, ctx.ignore_index)
    notes = []
    where = str(ctx.root)
    ignore, values = ctx.ignore_index, ctx.values
    void = VOC_VOID_LABEL
    if ignore is None and void in values and max(set(values) - {void}, default=0) < void - 1:
        ignore = void
        notes.append(Problem(Severity.WARNING, "ignore_255", where,
                             "label value 255 is read as 'ignore' (PASCAL VOC convention); "
                             "pass ignore_index to change this"))
    labels = sorted(set(values) - {ignore})
    n = ctx.num_classes if ctx.num_classes is not None else (max(labels) + 1 if labels else 1)
    palette = next((s.palette for s in ctx.scans if s.palette), None)
    colors = (tuple(tuple(palette[i]) for i in range(n)) if palette and len(palette) >= n
              else default_colors(n))
    ignore_color = (tuple(palette[ignore]) if palette and ignore is not None
                    and ignore < len(palette) else None)
    table = ClassTable(tuple(f"class_{i}" for i in range(n)), colors, ignore, ignore_color,
                       "given num_classes" if ctx.num_classes else "inferred from label values")
    if ctx.num_classes is None:
        notes.append(Problem(Severity.INFO, "classes_inferred", where,
                             f"{n} classes inferred from the label values {labels[:20]}; "
                             "name them in classes.json"))
        notes.extend(binary_strays(ctx, n))
    return ClassResult(table, ignore, tuple(notes))


#: most masks binary and the others holding more values: stray labels (a note names them)
STRAY_SHARE = 0.1


def binary_strays(ctx: ClassContext, num_classes: int) -> list[Problem]:
    """A note per mask file that keeps a binary dataset from being read as binary.

    When at least ``1 - STRAY_SHARE`` of the masks hold only {0, 1} (or only {0, 255}) and the
    others more values, those few are most likely stray labels (one value 7 in one file makes
    an 8-class model): each is named, with the class count it caused and the flag that reads
    the data as binary and names every bad value.
    """
    files = {path: set(scan.values.tolist()) - {ctx.ignore_index}
             for path, scan in ctx.scans_by_file.items()}
    for base in ({0, 1}, {0, 255}):
        binary = [path for path, values in files.items() if values <= base]
        strays = [path for path in files if path not in set(binary)]
        if strays and len(binary) >= (1 - STRAY_SHARE) * len(files):
            text = (f"holds label values other than {sorted(base)}, which {len(binary)} of the "
                    f"{len(files)} masks hold only, so the data is read as {num_classes} "
                    "classes; if it is binary, fix these files (--mask-kind binary reads it as "
                    "binary and names each bad value)")
            return [Problem(Severity.WARNING, "binary_strays", str(path), text)
                    for path in sorted(strays)]
    return []


class IndexMasks:
    """:class:`~segwise.data.masks.base.MaskKindSpec` of ``INDEX`` masks."""

    kind: ClassVar[MaskKind] = MaskKind.INDEX
    scans_files: ClassVar[bool] = True
    reads_lossy: ClassVar[bool] = False
    has_instances: ClassVar[bool] = False

    def detect(self, layout: str, samples: Sequence[Sample],
               scans: Sequence[MaskScan] | None) -> bool:
        return scans is not None  # the fallback: any scanned file no other kind claims

    def classes(self, ctx: ClassContext) -> ClassResult:
        return infer_index_classes(ctx)

    def check(self, sample: Sample, image: ImageScan | None, mask: MaskScan | None, *,
              table: ClassTable, ignore_index: int | None) -> FileCheck:
        if mask is None:
            return FileCheck(zero_counts(table))
        return check_labels(sample, mask, table=table, ignore_index=ignore_index)

    def read(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
             ) -> np.ndarray:
        return labels_in_range(as_labels(read_mask_raw(path).array, path), labels, path)


INDEX = IndexMasks()
