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
from segwise.data.formats import BINARY_SNAP_RULE, LOSSY_SUFFIXES, MaskKind
from segwise.data.info import Problem, Sample, Severity

__all__ = ["IMBALANCE_RATIO", "FileFindings", "check_files", "imbalance_problems"]

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
    """

    counts: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    instance_counts: dict[str, int] = field(default_factory=dict)
    ignored_pixels: int = 0
    crowd_counts: dict[str, int] = field(default_factory=dict)


def check_files(
    samples: Sequence[Sample],
    *,
    image_scans: Mapping[str, Any],
    mask_scans: Mapping[str, Any],
    root: Path,
    kind: MaskKind,
    table: ClassTable,
    ignore_index: int | None,
) -> FileFindings:
    """Check each pair (a pure pass: it returns its findings and changes none of its inputs).

    Args:
        samples: the pairs to check.
        image_scans: ``ImageScan`` per sample id (unreadable images are missing).
        mask_scans: ``MaskScan`` per sample id (unreadable masks are missing).
        root: the dataset root (named by dataset-wide findings).
        kind: how the masks encode labels.
        table: the class table (names, colours, ignore colour).
        ignore_index: the ignore label, or ``None``.
    """
    n = len(table.names)
    counts = np.zeros(n, dtype=np.int64)
    problems: list[Problem] = []
    instance_counts: dict[str, int] = {}
    crowd_counts: dict[str, int] = {}
    ignored = 0
    coco = None
    if kind == MaskKind.COCO:
        from segwise.data.instances import load_coco

        coco = load_coco(samples[0].mask_path)
    color_codes = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(table.colors)}
    if table.ignore_color is not None:
        r, g, b = table.ignore_color
        color_codes.setdefault((r << 16) | (g << 8) | b, -1)
    for s in samples:
        img = image_scans.get(s.id)
        if img is not None and img.alpha:
            problems.append(Problem(Severity.INFO, "alpha_dropped", str(s.image_path),
                                    "image has an alpha channel; it is dropped"))
        if img is not None and img.orientation != 1:
            problems.append(Problem(
                Severity.INFO, "exif_orientation", str(s.image_path),
                f"EXIF Orientation={img.orientation}: read as displayed "
                f"({_TURNS[img.orientation]}, {img.size[0]}x{img.size[1]} H x W); its mask must "
                "match the displayed picture"))
        lossy = s.mask_path is not None and s.mask_path.suffix.lower() in LOSSY_SUFFIXES
        if lossy and kind == MaskKind.BINARY:
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
        if coco is not None:
            try:
                found = coco.targets(s.image_path.name)
            except ValueError as err:
                problems.append(Problem(Severity.ERROR, "bad_annotation", str(s.mask_path),
                                        str(err)))
                continue
            instance_counts[s.id] = len(found.instances["ids"]) - found.num_crowd
            if found.num_crowd:
                crowd_counts[s.id] = found.num_crowd
            counts += np.bincount(found.semantic[~found.crowd_pixels], minlength=n)[:n]
            if found.overlap:
                problems.append(Problem(Severity.INFO, "coco_overlap", str(s.image_path),
                                        f"{found.overlap} pixels are covered by several "
                                        "instances; the semantic mask gives them the smallest "
                                        "one's class"))
            if img is not None and img.size != found.semantic.shape:
                problems.append(_size_problem(s, img.size, found.semantic.shape))
            continue
        m = mask_scans.get(s.id)
        if m is None:
            continue  # unreadable: already reported
        if img is not None and img.size != tuple(m.size):
            problems.append(_size_problem(s, img.size, m.size, img.orientation))
        if m.transparent:
            problems.append(Problem(
                Severity.INFO, "mask_alpha", str(s.mask_path),
                f"{m.transparent} transparent pixels (alpha < 128) read as background "
                "(0 / black)"))
        vals, cnts = m.values, m.counts
        if kind == MaskKind.SOFT:
            lo, hi = m.float_range if m.float_range is not None else (0.0, 1.0)
            if m.float_range is None and vals.size:
                lo, hi = float(vals.min()), float(vals.max())
                if hi > 1:
                    lo, hi = lo / 255.0, hi / 255.0  # 0/255 soft masks are scaled
            if not (lo >= 0.0 and hi <= 1.0):
                problems.append(_label_problem(s, f"soft values span [{lo}, {hi}], outside [0, 1]"))
            continue
        if kind == MaskKind.COLOR:
            codes = vals * 0x010101 if m.gray_rgb or m.channels == 1 else vals
            mapped = np.array([color_codes.get(int(c), -2) for c in codes.tolist()])
            unknown = codes[mapped == -2]
            if unknown.size:
                cols = [(c >> 16, (c >> 8) & 255, c & 255) for c in unknown[:5].tolist()]
                problems.append(_label_problem(
                    s, f"colours {cols} are not in the class colour table ({table.source})"
                    + ("; its transparent pixels are read as background, black (0, 0, 0): give "
                       "black as the background colour in classes.json"
                       if m.transparent and 0 in unknown.tolist() else "")))
            ok = mapped >= 0
            np.add.at(counts, mapped[ok], cnts[ok])
            continue
        if kind == MaskKind.INSTANCE:
            instance_counts[s.id] = _check_instances(s, vals, cnts, n, counts, problems)
            continue
        allowed = set(range(n)) if kind != MaskKind.BINARY else {0, 1, 255, 65535}
        if ignore_index is not None:
            allowed.add(ignore_index)
        snapped = kind == MaskKind.BINARY and _snaps(m, ignore_index)
        if snapped:
            grey = [int(v) for v in vals.tolist() if int(v) not in (0, 255, ignore_index)]
            pixels = int(cnts[np.isin(vals, grey)].sum())
            problems.append(Problem(
                Severity.WARNING, "binary_grey_snapped", str(s.mask_path),
                f"{pixels} pixels hold grey values {grey[:6]}{' ...' if len(grey) > 6 else ''} "
                f"in a 0/255 mask; snapped: {BINARY_SNAP_RULE}"))
            allowed |= set(grey)
        bad = [int(v) for v in vals.tolist() if int(v) not in allowed]
        if bad:
            problems.append(_label_problem(
                s, f"unexpected label values {bad[:10]}; expected 0..{n - 1}"
                + (f" or {ignore_index} (ignore)" if ignore_index is not None else "")))
        for v, c in zip(vals.tolist(), cnts.tolist(), strict=True):
            if v == ignore_index:
                ignored += c
                continue
            if snapped:
                v = int(v >= 128)
            elif kind == MaskKind.BINARY and v in (255, 65535):
                v = 1
            if 0 <= v < n:
                counts[v] += c
    if crowd_counts:
        problems.append(Problem(
            Severity.INFO, "coco_crowd", str(coco.path),
            f"{sum(crowd_counts.values())} crowd regions (iscrowd: 1) in {len(crowd_counts)} "
            "images: left out of the training instances, their pixels ignored in the semantic "
            "mask (not background), scored as crowd by evaluation (pycocotools' rule)"))
    problems += imbalance_problems(counts, table, where=str(root))
    return FileFindings(counts, problems, instance_counts, ignored, crowd_counts)


def _check_instances(s, vals, cnts, n, counts, problems) -> int:
    """Add one instance mask's class pixels to ``counts`` (a local of :func:`check_files`) and
    its findings to ``problems``; returns its number of objects."""
    from segwise.data.instances import read_instance_classes

    ids = [int(v) for v in vals.tolist() if v > 0]
    if ids and ids != list(range(1, len(ids) + 1)):
        problems.append(Problem(Severity.INFO, "noncontiguous_ids", str(s.mask_path),
                                f"instance ids are not 1..{len(ids)} (e.g. {ids[:6]}); "
                                "they are kept as they are"))
    try:
        classes = read_instance_classes(s.mask_path)
    except ValueError as err:
        problems.append(_label_problem(s, str(err)))
        return len(ids)
    for v, c in zip(vals.tolist(), cnts.tolist(), strict=True):
        cls = 0 if v == 0 else (1 if classes is None else classes.get(int(v), -1))
        if not 0 <= cls < n:
            problems.append(_label_problem(
                s, f"instance {v} has class {cls}, not in 1..{n - 1} (sidecar .json)"))
            continue
        counts[cls] += c
    return len(ids)


_TURNS = {1: "as stored", 2: "mirrored", 3: "rotated 180 degrees", 4: "flipped",
          5: "transposed", 6: "rotated 90 degrees", 7: "transversed",
          8: "rotated 270 degrees"}


def _snaps(m, ignore_index: int | None) -> bool:
    """The mask is read with the binary snapping rule (same test as ``mask_to_index``)."""
    if m.dtype != "uint8" or ignore_index == 255:
        return False
    labels = [int(v) for v in m.values.tolist() if v != ignore_index]
    return bool(labels) and max(labels) >= 128 and any(v not in (0, 255) for v in labels)


def _size_problem(s, image_size, mask_size, orientation: int = 1) -> Problem:
    if orientation in (5, 6, 7, 8) and tuple(mask_size) == tuple(image_size)[::-1]:
        return Problem(
            Severity.ERROR, "size_mismatch", str(s.mask_path),
            f"mask is {tuple(mask_size)} (H, W), the size of the stored pixels of image "
            f"{s.image_path.name}, but the image carries EXIF Orientation={orientation} "
            f"({_TURNS[orientation]}) and is read as displayed, {tuple(image_size)}; draw the "
            "mask on the displayed picture, or save the image without the EXIF orientation "
            "(e.g. PIL.ImageOps.exif_transpose, then save)")
    return Problem(Severity.ERROR, "size_mismatch", str(s.mask_path),
                   f"mask is {tuple(mask_size)} (H, W) but image {s.image_path.name} is "
                   f"{tuple(image_size)}; re-export the mask at the image's size")


def _label_problem(s, message: str) -> Problem:
    return Problem(Severity.ERROR, "unexpected_labels", str(s.mask_path),
                   f"{message}; fix the file or set num_classes / ignore_index / mask_kind")


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
