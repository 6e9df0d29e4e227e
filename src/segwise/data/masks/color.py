"""``COLOR`` masks: RGB masks where each class is one colour (needs a class -> colour table,
from ``classes.json``; without one the classes are the colours found, sorted by RGB value,
with a warning). Pixels in the table's ignore colour are read as the ignore label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from segwise.data.classes import ClassTable
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
from segwise.labels import LabelSpace

__all__ = ["COLOR", "ColorMasks", "color_to_index"]


def _code(r: int, g: int, b: int) -> int:
    return (r << 16) | (g << 8) | b


def color_to_index(raw: np.ndarray, labels: LabelSpace, source: str | Path) -> np.ndarray:
    """An RGB mask ``(H, W, 3)`` as ``int64 (H, W)`` class indices (ignore colour: ignore).

    Raises:
        ValueError: naming ``source`` for a wrong shape, a missing table or unknown colours.
    """
    colors, ignore_index, ignore_color = labels.colors, labels.ignore_index, labels.ignore_color
    if raw.ndim != 3 or raw.shape[-1] < 3:
        raise ValueError(f"colour mask {source} has shape {raw.shape}; expected (H, W, 3) RGB")
    if not colors:
        raise ValueError(
            f"colour mask {source} needs a class -> colour table; add classes.json to the root"
        )
    rgb = raw[..., :3].astype(np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    entries = list(colors)
    if ignore_color is not None and ignore_index is not None:
        entries.append(tuple(ignore_color))
    table = np.array([_code(r, g, b) for r, g, b in entries], dtype=np.int64)
    order = np.argsort(table)
    pos = np.searchsorted(table[order], code)
    pos = np.clip(pos, 0, len(table) - 1)
    found = table[order][pos] == code
    out = order[pos].astype(np.int64)
    if ignore_color is not None and ignore_index is not None:
        out[out == len(colors)] = ignore_index
    if not found.all():
        unknown = np.unique(code[~found])[:5]
        names = [f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown.tolist()]
        raise ValueError(
            f"colour mask {source} holds colours {', '.join(names)} that are not in the class "
            "colour table; add them to classes.json (or map them to the ignore colour)"
        )
    return out


class ColorMasks:
    """:class:`~segwise.data.masks.base.MaskKindSpec` of ``COLOR`` masks."""

    kind: ClassVar[MaskKind] = MaskKind.COLOR
    scans_files: ClassVar[bool] = True
    reads_lossy: ClassVar[bool] = False
    has_instances: ClassVar[bool] = False

    def detect(self, layout: str, samples: Sequence[Sample],
               scans: Sequence[MaskScan] | None) -> bool:
        return bool(scans) and any(s.channels == 3 for s in scans)

    def classes(self, ctx: ClassContext) -> ClassResult:
        if ctx.table is not None:
            return ClassResult(None, ctx.ignore_index)
        colors = tuple((c >> 16, (c >> 8) & 255, c & 255) for c in sorted(ctx.values))
        table = ClassTable(tuple(f"class_{i}" for i in range(len(colors))), colors, None, None,
                           "inferred from mask colours")
        note = Problem(Severity.WARNING, "colors_inferred", str(ctx.root),
                       f"{len(colors)} classes inferred from the mask colours {colors[:12]} "
                       "(sorted by RGB value); give the table in classes.json")
        return ClassResult(table, ctx.ignore_index, (note,))

    def check(self, sample: Sample, image: ImageScan | None, mask: MaskScan | None, *,
              table: ClassTable, ignore_index: int | None) -> FileCheck:
        counts = zero_counts(table)
        if mask is None:
            return FileCheck(counts)
        codes_of = {_code(*c): i for i, c in enumerate(table.colors)}
        if table.ignore_color is not None:
            codes_of.setdefault(_code(*table.ignore_color), -1)
        codes = mask.values * 0x010101 if mask.gray_rgb or mask.channels == 1 else mask.values
        mapped = np.array([codes_of.get(int(c), -2) for c in codes.tolist()])
        unknown = codes[mapped == -2]
        problems = []
        if unknown.size:
            cols = [(c >> 16, (c >> 8) & 255, c & 255) for c in unknown[:5].tolist()]
            problems.append(label_problem(
                sample, f"colours {cols} are not in the class colour table ({table.source})"
                + ("; its transparent pixels are read as background, black (0, 0, 0): give "
                   "black as the background colour in classes.json"
                   if mask.transparent and 0 in unknown.tolist() else "")))
        ok = mapped >= 0
        np.add.at(counts, mapped[ok], mask.counts[ok])
        return FileCheck(counts, problems)

    def read(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
             ) -> np.ndarray:
        return color_to_index(read_mask_raw(path).array, labels, path)


COLOR = ColorMasks()
