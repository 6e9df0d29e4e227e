"""``PALETTE`` masks: indexed PNGs whose pixel values are the class indices (e.g. PASCAL VOC,
where 255 marks pixels to ignore) and whose palette gives the class colours.

Read, checked and given classes with the functions of ``INDEX`` masks; detected by the palette.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from segwise.data.classes import ClassTable
from segwise.data.formats import MaskKind
from segwise.data.info import Sample
from segwise.data.masks.base import ClassContext, ClassResult, FileCheck
from segwise.data.masks.index import INDEX, infer_index_classes
from segwise.data.scan import ImageScan, MaskScan
from segwise.labels import LabelSpace

__all__ = ["PALETTE", "PaletteMasks"]


class PaletteMasks:
    """:class:`~segwise.data.masks.base.MaskKindSpec` of ``PALETTE`` masks."""

    kind: ClassVar[MaskKind] = MaskKind.PALETTE
    scans_files: ClassVar[bool] = True
    reads_lossy: ClassVar[bool] = False
    has_instances: ClassVar[bool] = False

    def detect(self, layout: str, samples: Sequence[Sample],
               scans: Sequence[MaskScan] | None) -> bool:
        return bool(scans) and any(s.palette is not None for s in scans)

    def classes(self, ctx: ClassContext) -> ClassResult:
        return infer_index_classes(ctx)  # the palette gives the colours

    def check(self, sample: Sample, image: ImageScan | None, mask: MaskScan | None, *,
              table: ClassTable, ignore_index: int | None) -> FileCheck:
        return INDEX.check(sample, image, mask, table=table, ignore_index=ignore_index)

    def read(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
             ) -> np.ndarray:
        return INDEX.read(path, labels)  # the pixel values are the class indices


PALETTE = PaletteMasks()
