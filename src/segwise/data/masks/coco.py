"""``COCO`` masks: one COCO JSON file of polygons / RLE for all images (needs pycocotools).

Categories become classes 1..N in category-id order (noted when the ids are not 1..N).
Overlapping objects stay overlapping in the Instance item; in the semantic mask a pixel takes
the class of the smallest object covering it. Crowd regions (``iscrowd: 1``) are in the
Instance item flagged ``"crowd"``, and their pixels are the pad label in the semantic mask
(:class:`segwise.data.instances.CocoTargets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from segwise.data.classes import ClassTable, default_colors
from segwise.data.formats import MaskKind
from segwise.data.info import Problem, Sample, Severity
from segwise.data.instances import CocoTargets, load_coco
from segwise.data.masks.base import (
    ClassContext,
    ClassResult,
    FileCheck,
    size_problem,
    zero_counts,
)
from segwise.data.scan import ImageScan, MaskScan
from segwise.labels import LabelSpace

__all__ = ["COCO", "CocoMasks"]


class CocoMasks:
    """:class:`~segwise.data.masks.base.MaskKindSpec` of ``COCO`` annotation files."""

    kind: ClassVar[MaskKind] = MaskKind.COCO
    scans_files: ClassVar[bool] = False
    reads_lossy: ClassVar[bool] = False
    has_instances: ClassVar[bool] = True

    def detect(self, layout: str, samples: Sequence[Sample],
               scans: Sequence[MaskScan] | None) -> bool:
        return layout == "images+coco"

    def classes(self, ctx: ClassContext) -> ClassResult:
        if ctx.table is not None:
            return ClassResult(None, ctx.ignore_index)
        coco = load_coco(ctx.samples[0].mask_path)
        table = ClassTable(coco.names, default_colors(len(coco.names)), None, None,
                           coco.path.name)
        notes = ()
        if coco.category_ids != list(range(1, len(coco.category_ids) + 1)):
            notes = (Problem(Severity.INFO, "coco_category_ids", str(coco.path),
                             f"category ids {coco.category_ids[:10]} are mapped to "
                             f"classes 1..{len(coco.category_ids)} in id order"),)
        return ClassResult(table, ctx.ignore_index, notes)

    def check(self, sample: Sample, image: ImageScan | None, mask: MaskScan | None, *,
              table: ClassTable, ignore_index: int | None) -> FileCheck:
        counts = zero_counts(table)
        try:
            found = load_coco(sample.mask_path).targets(sample.image_path.name)
        except ValueError as err:
            return FileCheck(counts, [Problem(Severity.ERROR, "bad_annotation",
                                              str(sample.mask_path), str(err))])
        n = len(table.names)
        counts += np.bincount(found.semantic[~found.crowd_pixels], minlength=n)[:n]
        problems = []
        if found.overlap:
            problems.append(Problem(Severity.INFO, "coco_overlap", str(sample.image_path),
                                    f"{found.overlap} pixels are covered by several "
                                    "instances; the semantic mask gives them the smallest "
                                    "one's class"))
        if image is not None and image.size != found.semantic.shape:
            problems.append(size_problem(sample, image.size, found.semantic.shape))
        return FileCheck(counts, problems, objects=len(found.instances["ids"]) - found.num_crowd,
                         crowd=found.num_crowd)

    def _targets(self, path: Path, image_name: str | None) -> CocoTargets:
        if image_name is None:
            raise ValueError(f"reading COCO annotations from {path} needs image_name")
        return load_coco(path).targets(image_name)

    def read(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
             ) -> np.ndarray:
        return self._targets(path, image_name).mask(labels.pad_value)  # crowd: ignored

    def read_instances(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The Instance item (numpy, crowd regions flagged) and the semantic mask."""
        found = self._targets(path, image_name)
        return found.instances, found.mask(labels.pad_value)


COCO = CocoMasks()
