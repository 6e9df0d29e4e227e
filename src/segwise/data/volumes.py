"""Volumes: NIfTI (``.nii``, ``.nii.gz``) read into a :class:`Volume` and label volumes written
back with the image's affine and header, so a prediction overlays its scan in ITK-SNAP or
3D Slicer. Reading and writing go through nibabel (the ``medical`` extra).

Axis order is the file's voxel order ``(i, j, k)``, read as the models' ``(D, H, W)``; nothing
is reoriented or resampled. ``Volume.spacing[a]`` is the voxel size along array axis ``a`` (the
header's ``pixdim``, in ``Volume.header``'s units, mm for MRI/CT), the same order the 3D
models' ``spacing=`` option takes. ``Volume.orientation`` names the axes' directions
(nibabel's ``aff2axcodes``: ``"RAS"`` = i towards Right, j Anterior, k Superior).

Not wired into discovery, training or the CLI yet (docs/volumes.md says what remains).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segwise.data.info import DataError

__all__ = [
    "NIFTI_SUFFIXES",
    "Volume",
    "check_geometry",
    "read_labels",
    "read_volume",
    "write_labels",
]

#: file name endings read as NIfTI
NIFTI_SUFFIXES = (".nii.gz", ".nii")

#: largest affine difference (per entry, in the affine's units: mm) still the same geometry
AFFINE_TOLERANCE = 1e-4


def _nibabel():
    try:
        import nibabel
    except ImportError as err:  # pragma: no cover - nibabel is in the dev extra
        raise ImportError(
            "reading NIfTI volumes needs nibabel: `pip install 'segwise[medical]'` "
            "(or `pip install nibabel`)"
        ) from err
    return nibabel


@dataclass(frozen=True, eq=False)
class Volume:
    """One volume as read from its file.

    Attributes:
        array: the voxels, ``(X, Y, Z)`` (``(X, Y, Z, C)`` for several channels) in the file's
            voxel order, dtype as stored (scaled to float when the header has a slope);
            labels from :func:`read_labels` are integers.
        spacing: voxel size per spatial axis ``(sx, sy, sz)`` (the header's ``pixdim``).
        affine: ``(4, 4)`` float64, voxel ``(i, j, k, 1)`` -> world (scanner) coordinates.
        header: the file's ``nibabel`` header (a copy), written back with labels.
        path: the file read, or ``None``.
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    affine: np.ndarray
    header: Any
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The spatial shape ``(X, Y, Z)``."""
        return tuple(self.array.shape[:3])

    @property
    def orientation(self) -> str:
        """Axis direction codes from the affine (nibabel's ``aff2axcodes``), e.g. ``"RAS"``."""
        return "".join(str(c) for c in _nibabel().aff2axcodes(self.affine))

    @property
    def anisotropy(self) -> float:
        """Largest over smallest voxel size: 1 for isotropic, 3.75 for (3, 0.8, 0.8) mm."""
        return max(self.spacing) / min(self.spacing)


def _check_suffix(path: Path) -> None:
    if not path.name.lower().endswith(NIFTI_SUFFIXES):
        raise ValueError(
            f"{path} is not a NIfTI file; expected a name ending in .nii or .nii.gz"
        )


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a NIfTI image (``.nii`` / ``.nii.gz``) as stored.

    Raises:
        ValueError: the name does not end in ``.nii`` / ``.nii.gz``.
        FileNotFoundError: no such file.
        DataError: nibabel cannot read it, or it has fewer than 3 axes (names the file).
    """
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    nib = _nibabel()
    try:
        image = nib.load(path)
        array = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises several kinds for a damaged file
        raise DataError(f"{path}: cannot be read as NIfTI ({err})") from err
    if array.ndim < 3:
        raise DataError(f"{path}: has shape {array.shape}; expected a 3D volume (X, Y, Z[, C])")
    zooms = image.header.get_zooms()[:3]
    return Volume(
        array=array,
        spacing=tuple(float(z) for z in zooms),
        affine=np.array(image.affine, dtype=np.float64),
        header=image.header.copy(),
        path=path,
    )


def _smallest_label_dtype(low: int, high: int) -> np.dtype:
    for dtype in (np.uint8, np.int16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    raise ValueError(f"label values {low}..{high} do not fit in int64")  # pragma: no cover


def _as_integer_labels(array: np.ndarray, where: str) -> np.ndarray:
    """``array`` as integers: integer dtypes as they are; floats when every value is integral."""
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return array.astype(np.uint8) if array.dtype == bool else array
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{where}: labels of dtype {array.dtype}; expected integers")
    bad = ~np.isfinite(array) | (array != np.round(array))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{where}: labels stored as {array.dtype} must be whole numbers, but voxel {index} "
            f"holds {float(array[index])} ({int(bad.sum())} such voxels); re-export the labels as "
            "integers"
        )
    if array.size == 0:
        return array.astype(np.uint8)
    dtype = _smallest_label_dtype(int(array.min()), int(array.max()))
    return array.astype(dtype)


def read_labels(path: str | os.PathLike) -> Volume:
    """Read a NIfTI label volume: integer class indices ``(X, Y, Z)``.

    Labels stored as float (some tools write ``float32``) are accepted when every value is a
    whole number and returned as the smallest integer dtype that holds them.

    Raises:
        DataError: a non-integral (or NaN/Inf) value, naming the file, a voxel and its value;
            or not a 3D volume (a trailing axis of 1 is dropped).
    """
    volume = read_volume(path)
    array = volume.array
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DataError(
            f"{volume.path}: a label volume has shape {array.shape}; expected (X, Y, Z)"
        )
    labels = _as_integer_labels(array, str(volume.path))
    return Volume(labels, volume.spacing, volume.affine, volume.header, volume.path)


def _affine_text(affine: np.ndarray) -> str:
    """``[[a, b, c, d], ...]`` with 6 significant digits, on one line."""
    rows = ("[" + ", ".join(f"{float(v):.6g}" for v in row) + "]" for row in np.asarray(affine))
    return "[" + ", ".join(rows) + "]"


def check_geometry(
    image: Volume, labels: Volume, *, tolerance: float = AFFINE_TOLERANCE
) -> None:
    """Refuse an image/label pair that does not lie on the same voxel grid.

    Args:
        image: the image volume.
        labels: its label volume.
        tolerance: largest difference allowed per affine entry (world units, mm).

    Raises:
        DataError: different spatial shapes, or affines further apart than ``tolerance``;
            the message names both files and, for affines, both matrices.
    """
    if image.shape != labels.shape:
        raise DataError(
            f"{labels.path}: label volume of shape {labels.shape} does not match its image "
            f"{image.path} of shape {image.shape}; expected the same voxel grid"
        )
    difference = float(np.max(np.abs(image.affine - labels.affine)))
    if not difference <= tolerance:
        raise DataError(
            f"{labels.path}: label affine {_affine_text(labels.affine)} differs from its "
            f"image {image.path} affine {_affine_text(image.affine)} by up to {difference:.6g} "
            f"(tolerance {tolerance:g}); the labels lie on another grid: resample them onto "
            "the image, or fix the header that is wrong"
        )


def write_labels(path: str | os.PathLike, labels: np.ndarray, *, like: Volume) -> Path:
    """Write ``labels (X, Y, Z)`` as NIfTI with ``like``'s affine and header.

    The header is ``like.header`` (sform, qform, their codes, units, description kept), with
    the data type set for labels: ``uint8`` when the values fit, else ``int16`` / ``int32``,
    and no intensity scaling. The written file's affine equals ``like.affine`` bit for bit
    when ``like`` was read from a file.

    Args:
        path: where to write (``.nii`` or ``.nii.gz``; parent folders are created).
        labels: ``(X, Y, Z)`` integer class indices (floats refused unless whole numbers),
            ``like``'s spatial shape.
        like: the image the labels belong to (from :func:`read_volume`).

    Returns:
        The path written.

    Raises:
        ValueError: bad suffix, shape other than ``like.shape``, or non-integral labels.
    """
    path = Path(path)
    _check_suffix(path)
    labels = np.asarray(labels)
    if labels.shape != like.shape:
        raise ValueError(
            f"labels of shape {labels.shape} cannot be written like {like.path}: expected its "
            f"spatial shape {like.shape}"
        )
    labels = _as_integer_labels(labels, f"labels for {path}")
    dtype = _smallest_label_dtype(int(labels.min()), int(labels.max())) if labels.size else (
        np.dtype(np.uint8))
    nib = _nibabel()
    header = like.header.copy()
    header.set_data_dtype(dtype)
    image = nib.Nifti1Image(labels.astype(dtype), None, header=header)  # affine from header
    image.header.set_slope_inter(1.0, 0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path
