"""Discovering a dataset of volumes (CT/MRI, NIfTI): pairs, split, classes, geometry, intensities.

Layouts, found by :func:`find_volume_layout` before the 2D ones:

- ``ROOT/imagesTr`` + ``ROOT/labelsTr`` (the Medical Segmentation Decathlon and nnU-Net);
  nnU-Net's channel suffix is understood: ``imagesTr/case_0000.nii.gz`` pairs with
  ``labelsTr/case.nii.gz``;
- ``ROOT/images`` + ``ROOT/labels`` (or ``masks``) holding volume files, paired by name.

A volume is a NIfTI, NRRD or MetaImage file, or a folder holding one DICOM series
(:func:`~segwise.data.volumes.is_volume_path`).

Classes come from ``dataset.json`` (MSD's ``{"labels": {"0": "background", ...}}`` or nnU-Net
v2's ``{"labels": {"background": 0, ...}}``), else ``classes.json``, else the label values
(0..max, with a notice). The intensity rule (:class:`~segwise.enums.Normalization`) is ``ct``
when ``dataset.json`` names the modality CT (``modality`` or ``channel_names``), else
``zscore``; ``--normalization`` overrides it.

Every volume is read once: the image (shape, spacing, orientation, channels, non-finite
voxels) and its labels (integral values, label range, the same voxel grid as the image by
:func:`~segwise.data.volumes.check_geometry`). What is wrong becomes a
:class:`~segwise.data.info.Problem` naming the file (both files for a geometry mismatch).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segwise.data.classes import ClassTable, default_colors, load_classes_file
from segwise.data.formats import MaskKind
from segwise.data.info import DataError, DataInfo, DatasetIndex, Problem, Sample, Severity
from segwise.data.pairing import Layout, split_samples
from segwise.data.resample import SPACING_TOLERANCE, needs_resampling
from segwise.data.volume_norm import channels_first, ct_statistics
from segwise.data.volumes import (
    check_geometry,
    is_volume_path,
    read_labels,
    read_volume,
    volume_id,
)
from segwise.enums import Normalization, Task
from segwise.labels import LabelSpace, check_ignore_label

__all__ = ["SPACING_TOLERANCE", "VolumeScan", "analyse_volumes", "dataset_modality",
           "find_volume_layout"]

_LAYOUTS = (("imagesTr", ("labelsTr",)), ("images", ("labels", "masks")))
# SPACING_TOLERANCE (1 %) is segwise.data.resample's, named here too for the inspect report


def _volume_files(folder: Path) -> list[Path]:
    """Volume files (NIfTI, NRRD, MetaImage) and DICOM series folders in ``folder``."""
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and is_volume_path(p))


def find_volume_layout(root: Path) -> Layout | None:
    """The volume layout under ``root``, or None when ``root`` holds no volume folders."""
    if not root.is_dir():
        return None
    for image_name, label_names in _LAYOUTS:
        images = root / image_name
        labels = next((root / n for n in label_names if (root / n).is_dir()), None)
        if not images.is_dir() or labels is None or not _volume_files(images):
            continue
        return _pair(images, labels, "msd" if image_name == "imagesTr" else "volumes")
    return None


def _pair(image_dir: Path, label_dir: Path, name: str) -> Layout:
    layout = Layout(name=name, samples=[])
    labels = {volume_id(p): p for p in _volume_files(label_dir)}
    by_case: dict[str, list[Path]] = {}
    for image in _volume_files(image_dir):
        stem = volume_id(image)
        case = stem
        if stem not in labels and len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit():
            case = stem[:-5]  # nnU-Net's channel suffix: case_0000 -> case
        by_case.setdefault(case, []).append(image)
    for case, images in sorted(by_case.items()):
        if len(images) > 1:
            layout.problems.append(Problem(
                Severity.ERROR, "multi_file_channels", str(images[0]),
                f"case {case!r} has {len(images)} channel files "
                f"({', '.join(p.name for p in images)}); segwise reads one file per case: "
                "stack the channels into one 4D NIfTI (X, Y, Z, C)"))
            continue
        if case not in labels:
            layout.unpaired.append(images[0])
            layout.problems.append(Problem(
                Severity.WARNING, "image_without_mask", str(images[0]),
                f"no label volume {case}.nii.gz in {label_dir}; this image is left out"))
            continue
        layout.samples.append(Sample(case, images[0], labels.pop(case)))
    for stem, path in sorted(labels.items()):
        layout.unpaired.append(path)
        layout.problems.append(Problem(
            Severity.WARNING, "mask_without_image", str(path),
            f"no image for label volume {stem!r} in {image_dir}; it is left out"))
    return layout


@dataclass(frozen=True)
class VolumeScan:
    """What reading one image/label pair found (``segwise data inspect``'s per-volume row).

    Attributes:
        shape: spatial shape ``(X, Y, Z)`` in the file's voxel order (the models' D, H, W).
        spacing: voxel size per axis, mm.
        orientation: axis codes of the affine, e.g. ``"RAS"``.
        dtype: the image's stored data type.
        channels: image channels (1 for a 3D file, C for ``(X, Y, Z, C)``).
        label_values: the label values present, ascending.
        label_counts: voxels per value in ``label_values``.
        nonfinite: NaN / inf voxels in the image.
        label_dtype: the label file's stored data type (float labels are read when integral).
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    orientation: str
    dtype: str
    channels: int
    label_values: tuple[int, ...]
    label_counts: tuple[int, ...]
    nonfinite: int = 0
    label_dtype: str = ""

    @property
    def anisotropy(self) -> float:
        """Largest over smallest voxel size (1 for isotropic)."""
        return max(self.spacing) / min(self.spacing)


def _scan(sample: Sample, problems: list[Problem]) -> tuple[VolumeScan, np.ndarray,
                                                             np.ndarray] | None:
    try:
        image = read_volume(sample.image_path)
    except (DataError, ValueError, FileNotFoundError) as err:
        problems.append(Problem(Severity.ERROR, "unreadable_image", str(sample.image_path),
                                str(err)))
        return None
    try:
        labels = read_labels(sample.mask_path)
        check_geometry(image, labels)
    except (DataError, ValueError, FileNotFoundError) as err:
        code = "geometry_mismatch" if "grid" in str(err) else "unreadable_mask"
        problems.append(Problem(Severity.ERROR, code, str(sample.mask_path), str(err)))
        return None
    array = channels_first(image.array)
    nonfinite = 0
    if np.issubdtype(array.dtype, np.floating):
        nonfinite = int(array.size - np.count_nonzero(np.isfinite(array)))
        if nonfinite:
            problems.append(Problem(
                Severity.ERROR, "nonfinite_voxels", str(sample.image_path),
                f"{nonfinite} NaN/inf voxels; fix or mask them before training (a volume's "
                "statistics and its patches would be wrong)"))
    values, counts = np.unique(labels.array, return_counts=True)
    if values.size and values.min() < 0:
        problems.append(Problem(Severity.ERROR, "negative_label", str(sample.mask_path),
                                f"label value {int(values.min())} < 0; labels are 0..K-1"))
    scan = VolumeScan(shape=image.shape, spacing=image.spacing, orientation=image.orientation,
                      dtype=str(image.array.dtype), channels=int(array.shape[0]),
                      label_values=tuple(int(v) for v in values),
                      label_counts=tuple(int(c) for c in counts), nonfinite=nonfinite,
                      label_dtype=_stored_dtype(labels))
    return scan, array, labels.array


def _stored_dtype(volume) -> str:
    """The data type a label file stores (NIfTI header's; else the array's as read)."""
    stored = getattr(volume.header, "get_data_dtype", None)
    return str(stored()) if stored is not None else str(volume.array.dtype)


def _dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); fix it or remove it") from err
    return data if isinstance(data, dict) else {}


def _class_table(root: Path, meta: dict, values: Counter[int],
                 problems: list[Problem]) -> ClassTable:
    labels = meta.get("labels")
    if isinstance(labels, dict) and labels:
        try:
            if all(str(k).isdigit() for k in labels):  # MSD: {"0": "background"}
                by_id = {int(k): str(v) for k, v in labels.items()}
            else:  # nnU-Net v2: {"background": 0}
                by_id = {int(v): str(k) for k, v in labels.items()}
        except (TypeError, ValueError) as err:
            raise DataError(f"{root / 'dataset.json'}: 'labels' is neither {{\"0\": name}} nor "
                            f"{{name: 0}} ({err})") from err
        if sorted(by_id) != list(range(len(by_id))):
            raise DataError(f"{root / 'dataset.json'}: label ids {sorted(by_id)} must be "
                            "0..K-1 without gaps (nnU-Net's region labels are not supported)")
        names = tuple(by_id[i] for i in range(len(by_id)))
        return ClassTable(names, default_colors(len(names)), None, None, "dataset.json")
    if (root / "classes.json").is_file():
        return load_classes_file(root / "classes.json")
    k = max(values) + 1 if values else 2
    names = ("background", *(f"class_{i}" for i in range(1, k)))
    problems.append(Problem(Severity.INFO, "classes_inferred", str(root),
                            f"no dataset.json or classes.json: {k} classes inferred from the "
                            "label values (0..max)"))
    return ClassTable(names, default_colors(k), None, None, "inferred from label values")


def dataset_modality(root: Path) -> str:
    """The first channel's modality named by ``ROOT/dataset.json`` (MSD's ``modality`` or
    nnU-Net v2's ``channel_names``), or ``""``."""
    return _modality(_dataset_json(root)) if root.is_dir() else ""


def _modality(meta: dict) -> str:
    for key in ("modality", "channel_names"):
        value = meta.get(key)
        if isinstance(value, dict) and value:
            return str(next(iter(value.values())))
    return ""


def _median_spacing(reference: list[VolumeScan], scans: dict[str, VolumeScan],
                    samples: list[Sample], problems: list[Problem]) -> tuple[float, ...]:
    """The median voxel size of the ``reference`` (training) volumes; each volume of
    ``samples`` (every split) whose size is off it by more than
    :data:`~segwise.data.resample.SPACING_TOLERANCE` is named in a notice: it is resampled."""
    spacings = np.array([s.spacing for s in reference], dtype=np.float64)
    median = np.median(spacings, axis=0)
    shown = tuple(round(float(v), 4) for v in median)
    for s in samples:
        scan = scans.get(s.id)
        if scan is None:
            continue
        if needs_resampling(scan.spacing, median):
            problems.append(Problem(
                Severity.INFO, "spacing_differs", str(s.image_path),
                f"voxel size {tuple(round(v, 4) for v in scan.spacing)} mm, other than the "
                f"median {shown} mm; the volume is resampled to the median spacing for "
                "training and validation (image trilinear, labels linear on one-hot), and "
                "predictions on it are resampled back to its own grid"))
    return tuple(float(v) for v in median)


def analyse_volumes(root: Path, layout: Layout, *, normalization: str = "auto",
                    ignore_index: int | None = None, num_classes: int | None = None,
                    class_names: tuple[str, ...] | None = None, val_fraction: float = 0.2,
                    seed: int = 0) -> tuple[DatasetIndex, dict[str, VolumeScan]]:
    """Discovery for a volume layout (module docstring): the index and each pair's scan.

    Args:
        root: the dataset folder.
        layout: from :func:`find_volume_layout`.
        normalization: ``"auto"``, ``"zscore"`` or ``"ct"`` (:class:`Normalization`).
        ignore_index, num_classes, class_names, val_fraction, seed: as for
            :func:`segwise.data.discover_dataset`.

    Returns:
        ``(index, scans)``: the :class:`DatasetIndex` (``info.spatial_dims == 3``, its
        ``problems`` listing every finding) and the :class:`VolumeScan` of each sample id.

    Raises:
        ValueError: nothing paired, or options that contradict the data.
    """
    problems = list(layout.problems)
    train, val, split_source, split_problems, test = split_samples(
        layout.samples, root=root, fixed=None, val_fraction=val_fraction, seed=seed)
    problems += split_problems
    samples = [*train, *val, *test]
    if not samples:
        raise ValueError(f"no image/label volume pairs found in {root} ({layout.name} layout)")
    scans: dict[str, VolumeScan] = {}
    ct_pairs = []
    values: Counter[int] = Counter()
    train_ids = {s.id for s in train}
    for s in samples:
        found = _scan(s, problems)
        if found is None:
            continue
        scan, array, labels = found
        scans[s.id] = scan
        values.update(dict(zip(scan.label_values, scan.label_counts, strict=True)))
        if s.id in train_ids:
            ct_pairs.append((array[:1], labels))
    meta = _dataset_json(root)
    table = _class_table(root, meta, values, problems)
    if class_names is not None:
        if len(class_names) != len(table.names):
            raise ValueError(f"class_names has {len(class_names)} names but {table.source} "
                             f"gives {len(table.names)} classes")
        table = ClassTable(tuple(class_names), table.colors, None, None, table.source)
    if num_classes is not None and num_classes != len(table.names):
        raise ValueError(f"num_classes={num_classes} but {table.source} gives "
                         f"{len(table.names)} classes ({', '.join(table.names[:12])})")
    k = len(table.names)
    for s in samples:
        scan = scans.get(s.id)
        bad = [v for v in (scan.label_values if scan else ()) if v >= k and v != ignore_index]
        if bad:
            problems.append(Problem(
                Severity.ERROR, "label_out_of_range", str(s.mask_path),
                f"label value(s) {bad[:5]} but {table.source} defines {k} classes (0..{k - 1}); "
                "fix the labels or the class list"))
    try:
        check_ignore_label(ignore_index, k)
    except ValueError as err:
        problems.append(Problem(Severity.ERROR, "ignore_in_class_range", str(root), str(err)))
        ignore_index = None
    channels = Counter(sc.channels for sc in scans.values())
    in_channels = channels.most_common(1)[0][0] if channels else 1
    for s in samples:
        if s.id in scans and scans[s.id].channels != in_channels:
            problems.append(Problem(
                Severity.ERROR, "channel_mismatch", str(s.image_path),
                f"{scans[s.id].channels} channels but most volumes have {in_channels}"))
    rule = _rule(normalization, _modality(meta))
    mean, std, clip = (0.0,) * in_channels, (1.0,) * in_channels, None
    if rule is Normalization.CT and ct_pairs and in_channels == 1:
        clip, m, sd = ct_statistics(ct_pairs, seed=seed)
        mean, std = (m,), (sd,)
    elif rule is Normalization.CT:
        raise ValueError("CT normalisation needs single-channel training volumes; use "
                         "--normalization zscore")
    reference = [s for s in (train or val or test) if s.id in scans]
    usable = [scans[s.id] for s in reference]
    spacing = _median_spacing(usable, scans, samples, problems) if usable else (1.0, 1.0, 1.0)
    median = tuple(int(v) for v in np.median([u.shape for u in usable], axis=0)) if usable \
        else (0, 0, 0)
    counts = [values.get(i, 0) for i in range(k)]
    task = Task.BINARY if k == 2 else Task.MULTICLASS
    labels_space = LabelSpace(task=task, names=table.names, colors=table.colors,
                              ignore_index=ignore_index)
    info = DataInfo(labels=labels_space, in_channels=in_channels, mask_kind=MaskKind.INDEX,
                    mean=mean, std=std, class_pixel_counts=tuple(counts), median_size=median,
                    classes_source=table.source, spatial_dims=3, spacing=spacing,
                    normalization=rule, clip=clip)
    index = DatasetIndex(root, train, val, info=info, layout=layout.name,
                         split_source=split_source, problems=problems,
                         unpaired=layout.unpaired, test=test)
    return index, scans


def _rule(normalization: str, modality: str) -> Normalization:
    if normalization == "auto":
        return Normalization.CT if modality.strip().upper() == "CT" else Normalization.ZSCORE
    rule = Normalization(normalization)
    if rule is Normalization.DATASET:
        raise ValueError("normalization='dataset' is for 2D images; volumes use zscore or ct")
    return rule
