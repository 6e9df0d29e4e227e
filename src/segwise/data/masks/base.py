"""The mask-kind seam: the protocol each kind of mask file implements, and its small values.

A mask kind (binary, class index, palette, colour, soft, instance, COCO) is ONE module of
:mod:`segwise.data.masks` holding one object that satisfies :class:`MaskKindSpec`, listed in the
table ``segwise.data.masks.MASK_KINDS``; :class:`~segwise.data.formats.MaskKind` stays the
public enum that names them. Discovery, the check pass and the datasets only talk to a kind
through this protocol:

- ``detect``: whether the files are of this kind (the table's order decides ties);
- ``classes``: the class table the files imply when no ``classes.json`` gives one;
- ``check``: one file's findings, a pure function returning a :class:`FileCheck`;
- ``read``: the item's semantic mask (and ``read_instances`` for instance kinds), given the
  dataset's :class:`~segwise.labels.LabelSpace` (classes, colours, ignore and pad labels).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from segwise.data.classes import ClassTable
from segwise.data.formats import MaskKind
from segwise.data.info import Problem, Sample, Severity
from segwise.data.scan import ImageScan, MaskScan
from segwise.enums import Task
from segwise.labels import LabelSpace

__all__ = [
    "ClassContext",
    "ClassResult",
    "FileCheck",
    "InstanceKindSpec",
    "MaskKindSpec",
    "label_problem",
    "size_problem",
    "turn_name",
    "zero_counts",
]

Color = tuple[int, int, int]


@dataclass(frozen=True)
class FileCheck:
    """What one file's check found (a new value; nothing passed in is changed).

    Attributes:
        counts: ``int64 (C,)`` pixels per class of this file.
        problems: findings naming the file.
        ignored: pixels labelled ``ignore_index``.
        objects: objects of an instance file (``None`` for other kinds).
        crowd: COCO crowd regions of the image.
    """

    counts: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    ignored: int = 0
    objects: int | None = None
    crowd: int = 0


@dataclass(frozen=True)
class ClassContext:
    """What the class resolution of a kind may look at.

    Attributes:
        root: the dataset root (named by dataset-wide notes).
        samples: every pair.
        scans: the masks' scans (empty for kinds that do not scan files).
        values: label value (or colour code) -> pixels, summed over the scans.
        table: the class table from ``classes.json`` or a known layout, or ``None``.
        ignore_index: the ignore label given or from that table, or ``None``.
        num_classes: the number of classes given by the user, or ``None``.
        scans_by_file: each scanned mask file and its scan (``scans``, named), so that
            notes can name the files they are about.
    """

    root: Path
    samples: Sequence[Sample]
    scans: Sequence[MaskScan]
    values: Counter
    table: ClassTable | None
    ignore_index: int | None
    num_classes: int | None
    scans_by_file: Mapping[Path, MaskScan] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassResult:
    """A kind's answer: the class table (``None``: keep the one found), the ignore label, the
    notes to report, and a task that the class count alone does not say (multilabel)."""

    table: ClassTable | None
    ignore_index: int | None
    notes: tuple[Problem, ...] = ()
    task: Task | None = None


@runtime_checkable
class MaskKindSpec(Protocol):
    """One kind of mask file (see the module docstring).

    Attributes:
        kind: the :class:`MaskKind` it implements.
        scans_files: discovery decodes each mask file into a :class:`MaskScan` (False: the
            kind reads one annotation file, e.g. COCO JSON).
        reads_lossy: JPEG masks can be read (binary masks, snapped); other kinds refuse them.
        has_instances: the files hold objects (``SegmentationDataset(instances=True)``).
    """

    kind: ClassVar[MaskKind]
    scans_files: ClassVar[bool]
    reads_lossy: ClassVar[bool]
    has_instances: ClassVar[bool]

    def detect(self, layout: str, samples: Sequence[Sample],
               scans: Sequence[MaskScan] | None) -> bool:
        """Whether the files are of this kind; ``scans`` is ``None`` before any mask is
        decoded (layout and folder evidence only)."""
        ...

    def classes(self, ctx: ClassContext) -> ClassResult:
        """The class table and ignore label these files imply, with notes."""
        ...

    def check(self, sample: Sample, image: ImageScan | None, mask: MaskScan | None, *,
              table: ClassTable, ignore_index: int | None) -> FileCheck:
        """One file's findings (pure)."""
        ...

    def read(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
             ) -> np.ndarray:
        """The item's ``"mask"``: ``int64 (H, W)`` class indices (or ``labels.ignore_index`` /
        ``labels.pad_value``), or ``float32 (K, H, W)`` in [0, 1] for soft masks.

        Raises:
            ValueError: naming the file and the bad values.
        """
        ...


@runtime_checkable
class InstanceKindSpec(MaskKindSpec, Protocol):
    """A kind whose files hold objects (``has_instances``): it also reads the Instance item."""

    def read_instances(self, path: Path, labels: LabelSpace, *, image_name: str | None = None
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The Instance item as numpy arrays (``masks``, ``labels``, ``boxes``, ``ids``, and
        ``crowd`` for COCO) and the item's semantic ``"mask"`` of one file."""
        ...


def label_problem(sample: Sample, message: str) -> Problem:
    """An ``unexpected_labels`` error naming the mask file, with what to do."""
    return Problem(Severity.ERROR, "unexpected_labels", str(sample.mask_path),
                   f"{message}; fix the file or set num_classes / ignore_index / mask_kind")


_TURNS = {1: "as stored", 2: "mirrored", 3: "rotated 180 degrees", 4: "flipped",
          5: "transposed", 6: "rotated 90 degrees", 7: "transversed",
          8: "rotated 270 degrees"}


def turn_name(orientation: int) -> str:
    """What an EXIF ``Orientation`` (1..8) does to the stored pixels, in words."""
    return _TURNS[orientation]


def size_problem(sample: Sample, image_size: tuple[int, int], mask_size: tuple[int, int],
                 orientation: int = 1) -> Problem:
    """A ``size_mismatch`` error: the mask's and the image's ``(H, W)`` differ."""
    if orientation in (5, 6, 7, 8) and tuple(mask_size) == tuple(image_size)[::-1]:
        return Problem(
            Severity.ERROR, "size_mismatch", str(sample.mask_path),
            f"mask is {tuple(mask_size)} (H, W), the size of the stored pixels of image "
            f"{sample.image_path.name}, but the image carries EXIF Orientation={orientation} "
            f"({_TURNS[orientation]}) and is read as displayed, {tuple(image_size)}; draw the "
            "mask on the displayed picture, or save the image without the EXIF orientation "
            "(e.g. PIL.ImageOps.exif_transpose, then save)")
    return Problem(Severity.ERROR, "size_mismatch", str(sample.mask_path),
                   f"mask is {tuple(mask_size)} (H, W) but image {sample.image_path.name} is "
                   f"{tuple(image_size)}; re-export the mask at the image's size")


def zero_counts(table: ClassTable) -> np.ndarray:
    """``int64 (C,)`` zeros, one per class of ``table``."""
    return np.zeros(len(table.names), dtype=np.int64)
