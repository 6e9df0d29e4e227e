"""The values that describe a dataset: :class:`Sample`, :class:`DataInfo`, :class:`DatasetIndex`,
and the :class:`Problem` records that discovery and inspection report.

``DataInfo`` is stored in checkpoints as plain builtins (:meth:`DataInfo.to_dict`), so that a
checkpoint alone knows the classes, colours, normalisation and task needed to predict; its
label space (:class:`~segwise.labels.LabelSpace`) is a field, nested under ``"labels"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from segwise._validation import as_enum
from segwise.data.formats import MaskKind
from segwise.enums import Normalization
from segwise.labels import FLAT_DATA_INFO_KEYS, LabelSpace

__all__ = [
    "DataError",
    "DataInfo",
    "DatasetIndex",
    "Problem",
    "Sample",
    "Severity",
    "raise_or_warn",
]

class DataError(ValueError):
    """The data cannot be used as it is; the message lists each problem with its file."""


@dataclass(frozen=True)
class Sample:
    """One image and its mask.

    Attributes:
        id: the sample's name (the image's file stem).
        image_path: the image file.
        mask_path: the mask file (a folder for several annotators' masks, the JSON file for
            COCO), or ``None`` for an image without a mask (prediction only).
    """

    id: str
    image_path: Path
    mask_path: Path | None


class Severity(str, Enum):
    """How bad a :class:`Problem` is: ``ERROR`` stops training, ``WARNING`` says what was done,
    ``INFO`` is a notice (e.g. "0/255 masks mapped to 0/1")."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Problem:
    """One finding about the data; ``file`` names the file (or the root for dataset-wide ones)."""

    severity: Severity
    code: str
    file: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity.value, "code": self.code, "file": self.file,
                "message": self.message}

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.file}: {self.message}"


@dataclass(frozen=True)
class DataInfo:
    """What the engine and the predictor need to know about a dataset (one comment per field).

    Everything about the labels (task, classes, colours, ignore and pad labels, output channels,
    the logits-to-labels and probability rules) is the one :class:`~segwise.labels.LabelSpace`
    in :attr:`labels`; the other fields describe the images and the files.
    """

    labels: LabelSpace  # task, class names and colours, ignore/pad labels, output channels
    in_channels: int  # image channels after reading (alpha dropped)
    mask_kind: MaskKind  # how the mask files encode labels
    mean: tuple[float, ...]  # per channel, images scaled to [0, 1]
    std: tuple[float, ...]  # per channel, images scaled to [0, 1]
    class_pixel_counts: tuple[int, ...] = ()  # pixels per class over the scanned masks
    median_size: tuple[int, ...] = (0, 0)  # median (H, W) of the training images; (D, H, W)
    classes_source: str = ""  # where the classes came from ("classes.json", "inferred", ...)
    spatial_dims: int = 2  # 2: images (N, C, H, W); 3: volumes (N, C, D, H, W)
    spacing: tuple[float, ...] = ()  # volumes: the training voxel size (D, H, W) in mm
    normalization: Normalization = Normalization.DATASET  # how intensities are normalised
    clip: tuple[float, float] | None = None  # Normalization.CT: the intensity window

    def __post_init__(self) -> None:
        if not isinstance(self.labels, LabelSpace):
            raise ValueError(f"DataInfo: labels={self.labels!r} is not valid; expected a "
                             "segwise.labels.LabelSpace")
        object.__setattr__(self, "mask_kind", as_enum(self.mask_kind, MaskKind, "mask_kind"))
        object.__setattr__(self, "normalization",
                           as_enum(self.normalization, Normalization, "normalization"))
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"DataInfo: spatial_dims={self.spatial_dims!r} is not valid; "
                             "expected 2 (images) or 3 (volumes)")
        if self.spacing and (len(self.spacing) != self.spatial_dims
                             or not all(v > 0 for v in self.spacing)):
            raise ValueError(f"DataInfo: spacing={self.spacing!r} is not valid; expected "
                             f"{self.spatial_dims} voxel sizes > 0")
        if self.normalization is Normalization.CT and (
                self.clip is None or not self.clip[0] < self.clip[1]):
            raise ValueError(f"DataInfo: normalization='ct' needs clip=(low, high) with low < "
                             f"high, got {self.clip!r}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError(
                f"DataInfo: mean/std have {len(self.mean)}/{len(self.std)} values but "
                f"in_channels={self.in_channels}; give one value per channel"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"DataInfo: std={self.std} must be > 0 for every channel")

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins only (str, int, float, list, dict, None), for checkpoints and JSON;
        the label space nested under ``"labels"`` (:meth:`LabelSpace.to_dict`)."""
        return {
            "labels": self.labels.to_dict(),
            "in_channels": self.in_channels,
            "mask_kind": self.mask_kind.value,
            "mean": list(self.mean),
            "std": list(self.std),
            "class_pixel_counts": list(self.class_pixel_counts),
            "median_size": list(self.median_size),
            "classes_source": self.classes_source,
            "spatial_dims": self.spatial_dims,
            "spacing": list(self.spacing),
            "normalization": self.normalization.value,
            "clip": None if self.clip is None else list(self.clip),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataInfo:
        """Inverse of :meth:`to_dict`; also reads the flat form of older checkpoints and exports
        (``task``, ``num_classes``, ``class_names``, ``class_colors``, ``ignore_index``,
        ``ignore_color`` at the top level). Unknown keys are an error (they would be lost).

        Raises:
            ValueError: on unknown keys, a dict holding both forms, or a stored
                ``num_classes`` that disagrees with its class names.
        """
        labels = LabelSpace.from_data_info(d)  # nested, or the flat keys of older files
        d = {k: v for k, v in d.items() if k != "labels" and k not in FLAT_DATA_INFO_KEYS}
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"DataInfo.from_dict: unknown keys {sorted(unknown)}")
        return cls(
            labels=labels,
            in_channels=int(d["in_channels"]),
            mask_kind=d["mask_kind"],
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            class_pixel_counts=tuple(int(v) for v in d.get("class_pixel_counts", ())),
            median_size=tuple(int(v) for v in d.get("median_size", (0, 0))),
            classes_source=str(d.get("classes_source", "")),
            spatial_dims=int(d.get("spatial_dims", 2)),
            spacing=tuple(float(v) for v in d.get("spacing", ())),
            normalization=d.get("normalization", Normalization.DATASET.value),
            clip=None if d.get("clip") is None else (float(d["clip"][0]), float(d["clip"][1])),
        )


@dataclass
class DatasetIndex:
    """The result of :func:`segwise.data.discover_dataset`.

    Attributes:
        root: the dataset folder (or the pairs file).
        train: training samples, sorted by id.
        val: validation samples, sorted by id.
        info: what the data is (classes, task, normalisation, ...).
        layout: which layout was found (e.g. ``"images+masks"``, ``"camvid"``).
        split_source: where the split came from (``"splits.json"``, ``"folders"``, ``"seeded"``).
        problems: what discovery noticed (left-out files, notices); nothing is dropped silently.
        unpaired: files without a partner (images without masks, masks without images).
        test: held-out test samples (``"test"`` in ``splits.json``), never used in training.
        class_pixels: ``{class: pixels}`` (voxels for volumes) per sample id, classes with
            pixels only, the ignore label left out: what discovery counted in each mask, for
            the per-image rules of :mod:`segwise.data.class_weights`. Not in checkpoints.
    """

    root: Path
    train: list[Sample]
    val: list[Sample]
    info: DataInfo
    layout: str = ""
    split_source: str = ""
    problems: list[Problem] = field(default_factory=list)
    unpaired: list[Path] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    class_pixels: dict[str, dict[int, int]] = field(default_factory=dict)

    @property
    def samples(self) -> list[Sample]:
        """Train, val, then test samples."""
        return [*self.train, *self.val, *self.test]


def raise_or_warn(problems: list[Problem], root: Path | str) -> None:
    """Stop on errors; say what was done for the rest.

    Raises:
        DataError: listing every ``ERROR`` problem with its file (first 20 shown).

    Otherwise sends one notice per kind of warning/notice, naming the files, through
    :func:`segwise.notices.notify` (printed once by the command line, a ``UserWarning``
    subclass in library use).
    """
    from segwise.notices import notify

    errors = [p for p in problems if p.severity == Severity.ERROR]
    if errors:
        shown = "\n".join(f"  - {p.file}: {p.message}" for p in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise DataError(
            f"{len(errors)} problem(s) in {root} stop training:\n{shown}{more}\n"
            f"Run `segwise data inspect {root}` for the full report."
        )
    groups: dict[str, list[Problem]] = {}
    for p in problems:
        groups.setdefault(p.code, []).append(p)
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            text = f"{first.file}: {first.message}"
        elif len({p.file for p in group}) == 1:  # dataset-wide findings of one kind
            more = f"; ... ({len(group)} in all)" if len(group) > 5 else ""
            text = f"{first.file}: " + "; ".join(p.message for p in group[:5]) + more
        else:
            names = ", ".join(Path(p.file).name for p in group[:10])
            more = f", ... ({len(group)} in all)" if len(group) > 10 else ""
            text = f"{first.message} -- {len(group)} files: {names}{more}"
        notify(first.severity.value, f"data: {text}")
