"""``segwise data inspect``: a report on a dataset (:func:`inspect_dataset`).

The same checks run at the start of training: ``inspect_dataset(root).raise_if_fatal()``
stops with one clear error listing every fatal problem with its file, and returns the
warnings (files left out, values mapped, ...) for the engine to print.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segwise.data.colorspace import RULES, ColorSpace
from segwise.data.discover import DiscoverOptions, analyse
from segwise.data.formats import MaskKind, NonFinite, read_image
from segwise.data.info import DataError, DatasetIndex, Problem, Severity, raise_or_warn

__all__ = ["DataError", "InspectionReport", "inspect_dataset"]


@dataclass
class InspectionReport:
    """What :func:`inspect_dataset` found.

    Attributes:
        index: the discovered dataset (pairs, split, :class:`DataInfo`).
        problems: every finding, each with severity, code, file and message.
        image_sizes: ``(H, W)`` per sample id.
        channels: image channel counts -> number of images.
        dtypes: image dtypes -> number of images.
        color_spaces: image colour spaces (:class:`~segwise.data.colorspace.ColorSpace`
            values) -> number of images.
        instances_per_image: object counts per sample id (instance data only).
        ignored_pixels: mask pixels labelled ``ignore_index`` (not counted in any class).
        crowd_per_image: COCO crowd regions (``iscrowd: 1``) per sample id, images with any.
    """

    index: DatasetIndex
    problems: list[Problem] = field(default_factory=list)
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    channels: dict[int, int] = field(default_factory=dict)
    dtypes: dict[str, int] = field(default_factory=dict)
    color_spaces: dict[str, int] = field(default_factory=dict)
    instances_per_image: dict[str, int] = field(default_factory=dict)
    ignored_pixels: int = 0
    crowd_per_image: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == Severity.WARNING]

    def raise_if_fatal(self) -> list[Problem]:
        """Raise :class:`DataError` listing every error; otherwise return the warnings."""
        errors = self.errors
        if errors:
            raise_or_warn(errors, self.index.root)
        return self.warnings

    def summary(self) -> dict[str, Any]:
        """Counts, sizes and classes as builtins."""
        info = self.index.info
        sizes = np.array(list(self.image_sizes.values()) or [(0, 0)])
        total = max(1, sum(info.class_pixel_counts))
        classes = [
            {"index": i, "name": name, "color": list(info.labels.colors[i]),
             "pixels": int(info.class_pixel_counts[i]) if info.class_pixel_counts else 0,
             "fraction": (info.class_pixel_counts[i] / total) if info.class_pixel_counts else 0}
            for i, name in enumerate(info.labels.names)
        ]
        out = {
            "root": str(self.index.root),
            "layout": self.index.layout,
            "split": self.index.split_source,
            "train": len(self.index.train),
            "val": len(self.index.val),
            "unpaired": len(self.index.unpaired),
            "size_min": [int(v) for v in sizes.min(axis=0)],
            "size_median": list(info.median_size),
            "size_max": [int(v) for v in sizes.max(axis=0)],
            "channels": {str(k): v for k, v in sorted(self.channels.items())},
            "dtypes": dict(sorted(self.dtypes.items())),
            "color_spaces": {k: {"images": v, "rule": RULES[ColorSpace(k)]}
                             for k, v in sorted(self.color_spaces.items())},
            "value_scale": {d: _SCALE_RULE.get(d, _OTHER_SCALE) for d in sorted(self.dtypes)},
            "mask_kind": info.mask_kind.value,
            "task": info.labels.task.value,
            "ignore_index": info.labels.ignore_index,
            "ignored_pixels": self.ignored_pixels,
            "classes_source": info.classes_source,
            "classes": classes,
        }
        if self.instances_per_image:
            counts = np.array(list(self.instances_per_image.values()))
            out["instances"] = {"total": int(counts.sum()), "min": int(counts.min()),
                                "median": float(np.median(counts)), "max": int(counts.max()),
                                "crowd": sum(self.crowd_per_image.values()),
                                "images_with_crowd": len(self.crowd_per_image)}
        return out

    def to_dict(self) -> dict[str, Any]:
        """The report as builtins (what ``segwise data inspect --json`` prints)."""
        by_severity = Counter(p.severity.value for p in self.problems)
        return {
            "summary": self.summary(),
            "info": self.index.info.to_dict(),
            "problem_counts": {s.value: by_severity.get(s.value, 0) for s in Severity},
            "problems": [p.to_dict() for p in self.problems],
        }


#: How images of each dtype are scaled before the per-channel mean/std normalisation.
_SCALE_RULE = {"uint8": "/ 255", "uint16": "/ 65535", "bool": "0/255, then / 255",
               "float16": "as stored", "float32": "as stored", "float64": "as stored"}
_OTHER_SCALE = "/ the dtype's maximum"


def inspect_dataset(
    root: str | Path,
    *,
    mask_kind: MaskKind | str = "auto",
    ignore_index: int | None = None,
    num_classes: int | None = None,
    class_names: list[str] | tuple[str, ...] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    decode_images: bool = True,
    nonfinite: NonFinite | str = NonFinite.REFUSE,
) -> InspectionReport:
    """Check a dataset; the options are those of :func:`segwise.data.discover_dataset`.

    Args:
        decode_images: decode every image (finds truncated/corrupt files; a few seconds on
            dsb2018 and CamVid); ``False`` reads headers only. Masks are always decoded.

    Returns:
        An :class:`InspectionReport`; nothing is raised for bad files (they are problems).

    Raises:
        FileNotFoundError / ValueError: when no dataset is found at all.
    """
    analysis = analyse(root, DiscoverOptions(
        mask_kind=mask_kind, ignore_index=ignore_index, num_classes=num_classes,
        class_names=class_names, val_fraction=val_fraction, seed=seed, nonfinite=nonfinite))
    index = analysis.index
    problems = list(index.problems)
    if decode_images:
        known_bad = {p.file for p in problems if p.code in ("unreadable_image", "color_space")
                     and p.severity == Severity.ERROR}
        for s in index.samples:
            if str(s.image_path) in known_bad:
                continue
            try:
                read_image(s.image_path)
            except ValueError as err:
                problems.append(Problem(Severity.ERROR, "unreadable_image", str(s.image_path),
                                        str(err)))
    if not index.train:
        problems.append(Problem(Severity.ERROR, "no_train", str(index.root),
                                "the training split is empty; check splits.json / val_fraction"))
    if not index.val:
        problems.append(Problem(Severity.WARNING, "no_val", str(index.root),
                                "the validation split is empty; validation metrics are skipped"))
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    problems.sort(key=lambda p: order[p.severity])
    scans = analysis.image_scans
    return InspectionReport(
        index=index,
        problems=problems,
        image_sizes={k: v.size for k, v in scans.items()},
        channels=dict(Counter(v.channels for v in scans.values())),
        dtypes=dict(Counter(v.dtype for v in scans.values())),
        color_spaces=dict(Counter(v.space for v in scans.values())),
        instances_per_image=dict(analysis.instance_counts),
        ignored_pixels=analysis.ignored_pixels,
        crowd_per_image=dict(analysis.crowd_counts),
    )
