"""Per-file checks shared by discovery and inspection, and the class-frequency findings.

Every problem names its file. ``ERROR`` problems stop training (``raise_if_fatal``); the others
say what was done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segwise.data.classes import ClassTable
from segwise.data.colorspace import RULES, ColorSpace
from segwise.data.formats import BINARY_SNAP_RULE, LOSSY_SUFFIXES, MaskKind, NonFinite
from segwise.data.info import Problem, Sample, Severity
from segwise.data.masks import mask_kind_spec
from segwise.data.masks.base import size_problem, turn_name

__all__ = ["IMBALANCE_RATIO", "FileFindings", "check_files", "image_problems",
           "imbalance_problems"]

#: Most / least frequent class pixel ratio above which the data is called heavily imbalanced.
IMBALANCE_RATIO = 50.0


@dataclass(frozen=True)
class FileFindings:
    """What :func:`check_files` found (a new value; nothing passed in is changed).

    Attributes:
        counts: ``int64 (C,)`` pixels per class over the readable masks.
        problems: one :class:`Problem` per finding, naming its file.
        instance_counts: objects per sample id (instance and COCO masks; COCO crowd regions
            not included).
        ignored_pixels: mask pixels labelled ``ignore_index`` (in no class).
        crowd_counts: COCO crowd regions (``iscrowd: 1``) per sample id, for images that have
            any.
        sample_counts: ``{class: pixels}`` per sample id (classes with pixels only), for the
            per-image rules of :mod:`segwise.data.class_weights`.
    """

    counts: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    instance_counts: dict[str, int] = field(default_factory=dict)
    ignored_pixels: int = 0
    crowd_counts: dict[str, int] = field(default_factory=dict)
    sample_counts: dict[str, dict[int, int]] = field(default_factory=dict)


def check_files(
    samples: Sequence[Sample],
    *,
    image_scans: Mapping[str, Any],
    mask_scans: Mapping[str, Any],
    root: Path,
    kind: MaskKind,
    table: ClassTable,
    ignore_index: int | None,
    nonfinite: NonFinite = NonFinite.REFUSE,
) -> FileFindings:
    """Check each pair (a pure pass: it returns its findings and changes none of its inputs).

    The checks every file gets (alpha, colour space, non-finite pixels, EXIF orientation, lossy
    masks, size, transparency) run here; what the labels mean is checked by the kind's module
    (``MaskKindSpec.check``).

    Args:
        samples: the pairs to check.
        image_scans: ``ImageScan`` per sample id (unreadable images are missing).
        mask_scans: ``MaskScan`` per sample id (unreadable masks are missing).
        root: the dataset root (named by dataset-wide findings).
        kind: how the masks encode labels.
        table: the class table (names, colours, ignore colour).
        ignore_index: the ignore label, or ``None``.
        nonfinite: what NaN / inf image pixels are (:class:`NonFinite`: an error, or a warning
            when they are to be ignored).
    """
    spec = mask_kind_spec(kind)
    counts = np.zeros(len(table.names), dtype=np.int64)
    problems: list[Problem] = []
    instance_counts: dict[str, int] = {}
    crowd_counts: dict[str, int] = {}
    sample_counts: dict[str, dict[int, int]] = {}
    ignored = 0
    for s in samples:
        img = image_scans.get(s.id)
        if img is not None and img.alpha:
            problems.append(Problem(Severity.INFO, "alpha_dropped", str(s.image_path),
                                    "image has an alpha channel; it is dropped"))
        if img is not None:
            problems += image_problems(s, img, nonfinite=nonfinite, soft=kind is MaskKind.SOFT)
        if img is not None and img.orientation != 1:
            problems.append(Problem(
                Severity.INFO, "exif_orientation", str(s.image_path),
                f"EXIF Orientation={img.orientation}: read as displayed "
                f"({turn_name(img.orientation)}, {img.size[0]}x{img.size[1]} H x W); its mask "
                "must match the displayed picture"))
        lossy = s.mask_path is not None and s.mask_path.suffix.lower() in LOSSY_SUFFIXES
        if lossy and spec.reads_lossy:
            problems.append(Problem(
                Severity.WARNING, "lossy_mask", str(s.mask_path),
                f"JPEG is lossy for labels: its grey values are snapped ({BINARY_SNAP_RULE}); "
                "save masks as PNG"))
        elif lossy:
            problems.append(Problem(
                Severity.ERROR, "lossy_mask", str(s.mask_path),
                f"a JPEG mask read as {kind.value} masks: JPEG changes label values (lossy), so "
                "only binary 0/255 masks can be read from it; re-save the masks as PNG"))
            continue
        m = None
        if spec.scans_files:
            m = mask_scans.get(s.id)
            if m is None:
                continue  # unreadable: already reported
            if img is not None and img.size != tuple(m.size):
                problems.append(size_problem(s, img.size, m.size, img.orientation))
            if m.nonfinite:
                problems.append(Problem(
                    Severity.ERROR, "nonfinite_pixels", str(s.mask_path),
                    f"{m.nonfinite} mask values are NaN or infinite; a soft target must be a "
                    "number in [0, 1] everywhere: fix the file"))
            if m.transparent:
                problems.append(Problem(
                    Severity.INFO, "mask_alpha", str(s.mask_path),
                    f"{m.transparent} transparent pixels (alpha < 128) read as background "
                    "(0 / black)"))
        found = spec.check(s, img, m, table=table, ignore_index=ignore_index)
        counts += found.counts
        sample_counts[s.id] = {c: int(n) for c, n in enumerate(found.counts.tolist()) if n}
        problems += found.problems
        ignored += found.ignored
        if found.objects is not None:
            instance_counts[s.id] = found.objects
        if found.crowd:
            crowd_counts[s.id] = found.crowd
    if crowd_counts:
        problems.append(Problem(
            Severity.INFO, "coco_crowd", str(samples[0].mask_path),
            f"{sum(crowd_counts.values())} crowd regions (iscrowd: 1) in {len(crowd_counts)} "
            "images: left out of the training instances, their pixels ignored in the semantic "
            "mask (not background), scored as crowd by evaluation (pycocotools' rule)"))
    problems += imbalance_problems(counts, table, where=str(root))
    return FileFindings(counts, problems, instance_counts, ignored, crowd_counts, sample_counts)


def image_problems(sample: Sample, img: Any, *, nonfinite: NonFinite = NonFinite.REFUSE,
                   soft: bool = False) -> list[Problem]:
    """The findings about one image's pixels: its colour space (the rule applied, as a notice),
    non-finite pixels of float images (an error, or a warning under ``NonFinite.IGNORE``), and
    float values outside [0, 1] (a notice: used as stored).

    Args:
        sample: the pair (its image is named).
        img: the image's :class:`~segwise.data.scan.ImageScan`.
        nonfinite: what NaN / inf pixels are.
        soft: the masks are soft (no ignore label: non-finite pixels are refused either way).
    """
    where = str(sample.image_path)
    problems = []
    space = ColorSpace(img.space)
    if space.converted:
        problems.append(Problem(Severity.INFO, "color_space", where,
                                f"{space.value} image: {RULES[space]}"))
    if img.nonfinite:
        h, w = img.size
        what = (f"{img.nonfinite} of {h * w} pixels hold NaN or +-inf values (a float image); "
                "they would make the loss NaN")
        if nonfinite is NonFinite.IGNORE and not soft:
            problems.append(Problem(
                Severity.WARNING, "nonfinite_pixels", where,
                f"{what}: read as the channel mean, their mask pixels ignored "
                "(nonfinite='ignore')"))
        else:
            fix = ("fix the file (soft masks have no ignore label)" if soft else
                   "fix the file, or read them as the mean and leave their mask pixels out "
                   "with nonfinite='ignore' (`segwise data inspect --nonfinite ignore`)")
            problems.append(Problem(Severity.ERROR, "nonfinite_pixels", where,
                                    f"{what}; {fix}"))
    if img.value_range is not None and not (img.value_range[0] >= 0.0
                                            and img.value_range[1] <= 1.0):
        lo, hi = img.value_range
        problems.append(Problem(
            Severity.INFO, "float_range", where,
            f"float values span [{lo:.4g}, {hi:.4g}], outside [0, 1]: used as stored "
            "(normalised by the dataset mean/std); colour jitter clips float images to [0, 1], "
            "so leave it off for such data"))
    return problems


def imbalance_problems(counts: np.ndarray, table: ClassTable, *, where: str) -> list[Problem]:
    """Flag classes that never appear and heavy imbalance (suggesting Dice + CE)."""
    problems = []
    total = int(counts.sum())
    if total == 0:
        return problems
    for i, c in enumerate(counts.tolist()):
        if c == 0:
            problems.append(Problem(Severity.WARNING, "class_absent", where,
                                    f"class {i} ({table.names[i]}) has no pixels in the masks"))
    present = counts[counts > 0]
    if present.size >= 2 and present.max() / present.min() > IMBALANCE_RATIO:
        i = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        problems.append(Problem(
            Severity.WARNING, "class_imbalance", where,
            f"heavy class imbalance: class {i} ({table.names[i]}) is "
            f"{100.0 * counts[i] / total:.3g}% of the pixels, the largest class "
            f"{100.0 * present.max() / total:.3g}%; "
            "Dice-based losses (the default --loss dicece) suit this; plain --loss ce "
            "would favour the large class"))
    return problems
