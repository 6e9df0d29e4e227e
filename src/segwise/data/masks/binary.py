"""``BINARY`` masks: one channel with values {0, 1} or {0, 255} (255 read as 1; 65535 for
16-bit files).

Grey values of a 0/255 uint8 mask (edges of a mask resized with interpolation, JPEG noise) are
snapped by :data:`segwise.data.formats.BINARY_SNAP_RULE` and reported per file; binary masks
are the only kind read from JPEG files (snapped, with a warning).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from segwise.data.classes import ClassTable
from segwise.data.formats import (
    BINARY_SNAP_RULE,
    LOSSY_SUFFIXES,
    SNAP_AT,
    MaskKind,
    read_mask_raw,
)
from segwise.data.info import Problem, Sample, Severity
from segwise.data.masks.base import (
    ClassContext,
    ClassResult,
    FileCheck,
    label_problem,
    zero_counts,
)
from segwise.data.masks.index import as_labels
from segwise.data.scan import ImageScan, MaskScan
from segwise.labels import LabelSpace

__all__ = ["BINARY", "GREY_EDGE_SHARE", "BinaryMasks", "binary_to_index"]

#: Largest share of grey (not 0, not 255) pixels in 0/255 masks still read as binary.
GREY_EDGE_SHARE = 0.1

_TABLE = ClassTable(("background", "foreground"), ((0, 0, 0), (255, 255, 255)), None, None,
                    "binary masks")


def _grey_value_counts(scans: Sequence[MaskScan]) -> Counter[int] | None:
    """Pixels per value over all masks when every mask is single-channel uint8 without a
    palette (the only masks that may be 0/255 binary), else None."""
    counts: Counter[int] = Counter()
    for s in scans:
        if s.dtype != "uint8" or s.channels != 1 or s.palette is not None:
            return None
        counts.update(dict(zip(s.values.tolist(), s.counts.tolist(), strict=True)))
    return counts


def _grey_edged(scans: Sequence[MaskScan]) -> bool:
    """0/255 binary masks whose edges hold grey values (resized with interpolation, or JPEG).

    Read as binary when every mask is single-channel uint8 without a palette, 255 is present,
    the grey pixels (1..254) are at most :data:`GREY_EDGE_SHARE` of all pixels and fewer than
    the 255 pixels (so 255 is a class, not a thin PASCAL VOC-style "ignore" outline). Otherwise
    the masks are read as class indices.
    """
    counts = _grey_value_counts(scans)
    if counts is None:
        return False
    total = sum(counts.values())
    grey = total - counts[0] - counts[255]
    return bool(total and counts[255] > grey and grey <= GREY_EDGE_SHARE * total)


def _lossy_two_tone(samples: Sequence[Sample], scans: Sequence[MaskScan]) -> bool:
    """JPEG masks that are 0/255 masks blurred by compression: read as binary first.

    Class indices cannot survive JPEG (only binary masks are read from it, snapped), so a
    folder of JPEG masks whose pixels are nearly all dark (< 64) or bright (>= 192), with some
    bright, is binary however many grey values the compression left (small objects leave
    more grey pixels than foreground ones, which :func:`_grey_edged` refuses).
    """
    masks = [s.mask_path for s in samples if s.mask_path is not None]
    if not masks or any(p.suffix.lower() not in LOSSY_SUFFIXES for p in masks):
        return False
    counts = _grey_value_counts(scans)
    if counts is None:
        return False
    total = sum(counts.values())
    bright = sum(c for v, c in counts.items() if v >= 192)
    dark = sum(c for v, c in counts.items() if v < 64)
    return bool(total and bright and dark + bright >= (1 - GREY_EDGE_SHARE) * total)


def _scan_snaps(m: MaskScan, ignore_index: int | None) -> bool:
    """The scanned mask is read with the snapping rule (the test of :func:`_needs_snapping`)."""
    if m.dtype != "uint8" or ignore_index == 255:
        return False
    labels = [int(v) for v in m.values.tolist() if v != ignore_index]
    return bool(labels) and max(labels) >= SNAP_AT and any(v not in (0, 255) for v in labels)


def _needs_snapping(out: np.ndarray, dtype, is_ignore: np.ndarray, ignore_index) -> bool:
    """A uint8 mask on the 0..255 scale holding values other than 0 and 255 (not ignored)."""
    if dtype != np.uint8 or ignore_index == 255:
        return False
    labels = out[~is_ignore]
    if not labels.size or labels.max() < SNAP_AT:
        return False
    return bool(((labels != 0) & (labels != 255)).any())


def binary_to_index(raw: np.ndarray, labels: LabelSpace, source: str | Path) -> np.ndarray:
    """A stored binary mask ``(H, W)`` as ``int64 (H, W)`` in {0, 1} or ``ignore_index``.

    Raises:
        ValueError: naming ``source`` and values that are neither binary nor ignored.
    """
    ignore_index = labels.ignore_index
    out = as_labels(raw, source)
    is_ignore = out == ignore_index if ignore_index is not None else np.zeros_like(out, bool)
    if _needs_snapping(out, raw.dtype, is_ignore, ignore_index):
        fg = (out >= SNAP_AT) & ~is_ignore  # grey edges (interpolated or JPEG): snapped
        bad = np.zeros_like(fg)
    else:
        hi = 65535 if raw.dtype == np.uint16 else 255
        fg = ((out == 1) | (out == hi)) & ~is_ignore
        bad = ~((out == 0) | fg | is_ignore)
    if bad.any():
        vals = np.unique(out[bad])[:10].tolist()
        raise ValueError(
            f"mask {source} holds values {vals} that are not binary (0, 1 or 255); "
            "pass mask_kind='index' for class-index masks, or fix the file"
        )
    result = fg.astype(np.int64)
    if ignore_index is not None:
        result[is_ignore] = ignore_index
    return result


class BinaryMasks:
    """:class:`~segwise.data.masks.base.MaskKindSpec` of ``BINARY`` masks."""

    kind: ClassVar[MaskKind] = MaskKind.BINARY
    scans_files: ClassVar[bool] = True
    reads_lossy: ClassVar[bool] = True
    has_instances: ClassVar[bool] = False

    def detect(self, layout: str, samples: Sequence[Sample],
               scans: Sequence[MaskScan] | None) -> bool:
        if not scans:
            return False
        values: set[int] = set()
        for s in scans:
            values.update(s.values.tolist())
        return (values <= {0, 1} or values <= {0, 255} or values <= {0, 65535}
                or _grey_edged(scans) or _lossy_two_tone(samples, scans))

    def classes(self, ctx: ClassContext) -> ClassResult:
        ignore, values = ctx.ignore_index, ctx.values
        notes = []
        if values and set(values) - {0, 1, ignore} and 255 in values:
            grey = sorted(set(values) - {0, 1, 255, ignore})
            notes.append(Problem(
                Severity.INFO, "binary_0_255", str(ctx.root),
                "masks hold 0/255; 255 is read as foreground (class 1)"
                + (f"; {len(grey)} grey values (e.g. {grey[:6]}) are snapped: {BINARY_SNAP_RULE}"
                   if grey and ignore != 255 else "")))
        return ClassResult(ctx.table or _TABLE, ignore, tuple(notes))

    def check(self, sample: Sample, image: ImageScan | None, mask: MaskScan | None, *,
              table: ClassTable, ignore_index: int | None) -> FileCheck:
        counts = zero_counts(table)
        if mask is None:
            return FileCheck(counts)
        n = len(table.names)
        problems = []
        allowed = {0, 1, 255, 65535} | ({ignore_index} if ignore_index is not None else set())
        vals, cnts = mask.values, mask.counts
        snapped = _scan_snaps(mask, ignore_index)
        if snapped:
            grey = [int(v) for v in vals.tolist() if int(v) not in (0, 255, ignore_index)]
            pixels = int(cnts[np.isin(vals, grey)].sum())
            problems.append(Problem(
                Severity.WARNING, "binary_grey_snapped", str(sample.mask_path),
                f"{pixels} pixels hold grey values {grey[:6]}{' ...' if len(grey) > 6 else ''} "
                f"in a 0/255 mask; snapped: {BINARY_SNAP_RULE}"))
            allowed |= set(grey)
        bad = [int(v) for v in vals.tolist() if int(v) not in allowed]
        if bad:
            problems.append(label_problem(
                sample, f"unexpected label values {bad[:10]}; expected 0..{n - 1}"
                + (f" or {ignore_index} (ignore)" if ignore_index is not None else "")))
        ignored = 0
        for v, c in zip(vals.tolist(), cnts.tolist(), strict=True):
            if v == ignore_index:
                ignored += c
                continue
            if snapped:
                v = int(v >= SNAP_AT)
            elif v in (255, 65535):
                v = 1
            if 0 <= v < n:
                counts[v] += c
        return FileCheck(counts, problems, ignored)

    def read(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
             ) -> np.ndarray:
        return binary_to_index(read_mask_raw(path).array, labels, path)


BINARY = BinaryMasks()
