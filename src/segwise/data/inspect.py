"""``segwise data inspect``: a report on a dataset (:func:`inspect_dataset`).

The same checks run at the start of training: ``inspect_dataset(root).raise_if_fatal()``
stops with one clear error listing every fatal problem with its file, and returns the
warnings (files left out, values mapped, ...) for the engine to print.

On a dataset of volumes (:mod:`segwise.data.volume_discover`) the report describes the
volumes instead of the images: shapes, spacings, orientations, dtypes, anisotropy, the
intensity rule and why it was chosen, and one row per volume (:meth:`InspectionReport.volume_rows`).
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
from segwise.data.volume_discover import (
    SPACING_TOLERANCE,
    VolumeScan,
    dataset_modality,
)
from segwise.enums import Normalization

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
        volume_scans: volumes only: what reading each image/label pair found, by sample id.
        normalization_reason: volumes only: why ``info.normalization`` was chosen.
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
    volume_scans: dict[str, VolumeScan] = field(default_factory=dict)
    normalization_reason: str = ""

    @property
    def is_volumes(self) -> bool:
        """True for a dataset of volumes (``info.spatial_dims == 3``)."""
        return self.index.info.spatial_dims == 3

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
        """Counts, sizes and classes as builtins (volumes: :meth:`volume_summary`)."""
        if self.is_volumes:
            return self.volume_summary()
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
            **({"volumes": self.volume_rows()} if self.is_volumes else {}),
        }

    def volume_summary(self) -> dict[str, Any]:
        """The dataset-level report on volumes as builtins: split, classes with voxel counts
        and foreground share, the intensity rule and its reason, shapes, spacings (mm),
        orientations, dtypes, channels and anisotropy over the volumes that could be read."""
        index, info = self.index, self.index.info
        scans = list(self.volume_scans.values())
        shapes = np.array([s.shape for s in scans] or [(0, 0, 0)])
        spacings = np.array([s.spacing for s in scans] or [(0.0, 0.0, 0.0)], dtype=np.float64)
        counts = list(info.class_pixel_counts) or [0] * len(info.labels.names)
        total = sum(counts)
        classes = [{"index": i, "name": name, "voxels": int(counts[i]),
                    "fraction": counts[i] / max(1, total)}
                   for i, name in enumerate(info.labels.names)]
        anisotropy = [s.anisotropy for s in scans]
        return {
            "root": str(index.root),
            "layout": index.layout,
            "spatial_dims": 3,
            "split": index.split_source,
            "train": len(index.train),
            "val": len(index.val),
            "test": len(index.test),
            "unpaired": len(index.unpaired),
            "volumes_read": len(scans),
            "shape_min": [int(v) for v in shapes.min(axis=0)],
            "shape_median": [int(v) for v in info.median_size],
            "shape_max": [int(v) for v in shapes.max(axis=0)],
            "spacing_min": _mm(spacings.min(axis=0)),
            "spacing_median": _mm(info.spacing),
            "spacing_max": _mm(spacings.max(axis=0)),
            "orientations": dict(Counter(s.orientation for s in scans).most_common()),
            "dtypes": dict(sorted(Counter(s.dtype for s in scans).items())),
            "channels": {str(k): v for k, v in sorted(Counter(s.channels for s in scans).items())},
            "nonfinite_voxels": sum(s.nonfinite for s in scans),
            "anisotropy": {"max": round(max(anisotropy, default=1.0), 4),
                           "threshold": ANISOTROPY_THRESHOLD,
                           "over_threshold": sum(a > ANISOTROPY_THRESHOLD for a in anisotropy)},
            "normalization": {"rule": info.normalization.value,
                              "reason": self.normalization_reason,
                              "applies": _NORMALIZATION_RULE.get(info.normalization, ""),
                              "clip": None if info.clip is None else list(info.clip),
                              "mean": list(info.mean), "std": list(info.std)},
            "task": info.labels.task.value,
            "ignore_index": info.labels.ignore_index,
            "classes_source": info.classes_source,
            "classes": classes,
            "foreground_fraction": (total - counts[0]) / max(1, total) if counts else 0.0,
        }

    def volume_rows(self) -> list[dict[str, Any]]:
        """One row per image/label pair, train then val then test: id, split, files, shape,
        spacing (mm), orientation, dtype, channels, label values and their voxel counts,
        anisotropy, whether the spacing differs from the median, and the codes of the
        problems naming either file (a volume that could not be read has ``None`` fields)."""
        index = self.index
        codes: dict[str, list[str]] = {}
        for p in self.problems:
            codes.setdefault(p.file, []).append(p.code)
        median = np.asarray(index.info.spacing or (1.0, 1.0, 1.0), dtype=np.float64)
        rows = []
        for split, group in (("train", index.train), ("val", index.val), ("test", index.test)):
            for s in group:
                scan = self.volume_scans.get(s.id)
                row: dict[str, Any] = {
                    "id": s.id, "split": split, "image": str(s.image_path),
                    "labels": str(s.mask_path), "shape": None, "spacing": None,
                    "orientation": None, "dtype": None, "label_dtype": None, "channels": None,
                    "label_values": None, "label_voxels": None, "anisotropy": None,
                    "spacing_differs": False,
                    "problems": codes.get(str(s.image_path), []) + codes.get(str(s.mask_path), []),
                }
                if scan is not None:
                    off = np.abs(np.asarray(scan.spacing) / median - 1).max()
                    row.update(shape=list(scan.shape), spacing=_mm(scan.spacing),
                               orientation=scan.orientation, dtype=scan.dtype,
                               label_dtype=scan.label_dtype,
                               channels=scan.channels, label_values=list(scan.label_values),
                               label_voxels=list(scan.label_counts),
                               anisotropy=round(scan.anisotropy, 4),
                               spacing_differs=bool(off > SPACING_TOLERANCE))
                rows.append(row)
        return rows


#: nnU-Net treats a dataset as anisotropic when a volume's largest voxel side exceeds this
#: multiple of its smallest (Isensee et al. 2021; its 3D patches then keep the coarse axis short).
ANISOTROPY_THRESHOLD = 3.0

#: What each volume intensity rule does (:mod:`segwise.data.volume_norm`).
_NORMALIZATION_RULE = {
    Normalization.ZSCORE: "(x - mean) / std per volume and channel",
    Normalization.CT: "clip to the training foreground's 0.5 / 99.5 percentiles, then "
                      "(x - mean) / std of that foreground",
}


def _mm(values) -> list[float]:
    return [round(float(v), 6) for v in values]


def _normalization_reason(root: Path, requested: str, rule: Normalization) -> str:
    """Why ``rule`` was chosen: the option, or ``dataset.json``'s modality, or the default."""
    if requested != "auto":
        return f"normalization={requested!r} given"
    modality = dataset_modality(root)
    if modality:
        return f"dataset.json names the modality {modality!r}" + (
            "" if rule is Normalization.CT else ", not CT")
    return "no modality in dataset.json: the default for volumes"


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
    normalization: str = "auto",
) -> InspectionReport:
    """Check a dataset; the options are those of :func:`segwise.data.discover_dataset`.

    Args:
        decode_images: decode every image (finds truncated/corrupt files; a few seconds on
            dsb2018 and CamVid); ``False`` reads headers only. Masks are always decoded, and
            volumes always read whole (discovery reads every image and label volume).
        normalization: volumes only: ``"auto"``, ``"zscore"`` or ``"ct"``.

    Returns:
        An :class:`InspectionReport`; nothing is raised for bad files (they are problems).

    Raises:
        FileNotFoundError / ValueError: when no dataset is found at all.
    """
    analysis = analyse(root, DiscoverOptions(
        mask_kind=mask_kind, ignore_index=ignore_index, num_classes=num_classes,
        class_names=class_names, val_fraction=val_fraction, seed=seed, nonfinite=nonfinite,
        normalization=normalization))
    index = analysis.index
    volumes = index.info.spatial_dims == 3
    problems = list(index.problems)
    if decode_images and not volumes:
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
        volume_scans=dict(analysis.volume_scans),
        normalization_reason=(_normalization_reason(index.root, normalization,
                                                    index.info.normalization)
                              if volumes else ""),
    )
