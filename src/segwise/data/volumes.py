"""Volumes: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``,
``.mhd``) and DICOM series (a folder) read into a :class:`Volume`, and label volumes written
back with the image's geometry, so a prediction overlays its scan in ITK-SNAP or 3D Slicer.
NIfTI goes through nibabel, the others through SimpleITK (:mod:`segwise.data.volume_formats`);
both are in the ``medical`` extra. Affines are voxel -> RAS+ for every format (ITK's LPS is
converted), so volumes read from different formats compare.

Axis order is the file's voxel order ``(i, j, k)``, read as the models' ``(D, H, W)``; nothing
is reoriented or resampled (SimpleITK's ``(z, y, x)`` arrays are transposed to ``(x, y, z)``).
``Volume.spacing[a]`` is the voxel size along array axis ``a`` (NIfTI's ``pixdim``, SimpleITK's
``GetSpacing()``; mm for MRI/CT), the same order the 3D
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

from segwise._lazy import import_extra
from segwise.data.info import DataError
from segwise.data.volume_formats import (
    DICOM_SUFFIXES,
    ITK_SUFFIXES,
    NIFTI_SUFFIXES,
    VOLUME_SUFFIXES,
    is_volume_path,
    read_dicom_series,
    read_itk_file,
    volume_id,
    volume_suffix,
    write_itk_labels,
)

__all__ = [
    "NIFTI_SUFFIXES",
    "VOLUME_SUFFIXES",
    "Volume",
    "check_geometry",
    "is_volume_path",
    "read_labels",
    "read_volume",
    "volume_id",
    "write_labels",
]

#: largest affine difference (per entry, in the affine's units: mm) still the same geometry
AFFINE_TOLERANCE = 1e-4


def _nibabel():
    return import_extra("nibabel", extra="medical", purpose="reading NIfTI volumes")


@dataclass(frozen=True, eq=False)
class Volume:
    """One volume as read from its file.

    Attributes:
        array: the voxels, ``(X, Y, Z)`` (``(X, Y, Z, C)`` for several channels or components)
            in the file's voxel order, dtype as stored (NIfTI: scaled to float when the header
            has a slope; DICOM: see :func:`~segwise.data.volume_formats.read_dicom_series`);
            labels from :func:`read_labels` are integers.
        spacing: voxel size per spatial axis ``(sx, sy, sz)`` (NIfTI: the header's ``pixdim``;
            others: SimpleITK's ``GetSpacing()``).
        affine: ``(4, 4)`` float64, voxel ``(i, j, k, 1)`` -> RAS+ world (scanner) coordinates,
            mm, for every format.
        header: NIfTI: the file's ``nibabel`` header (a copy), written back with labels;
            others: an :class:`~segwise.data.volume_formats.ItkHeader` (origin, spacing and
            direction in ITK's LPS terms, and the metadata dictionary).
        path: the file (or DICOM folder) read, or ``None``.
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


def _unknown_suffix(path: Path) -> ValueError:
    hint = (" (a DICOM file is one slice: pass the folder holding its series)"
            if path.name.lower().endswith(DICOM_SUFFIXES) else "")
    return ValueError(
        f"{path} is not a NIfTI file or another volume segwise reads{hint}; expected a name "
        f"ending in {', '.join(VOLUME_SUFFIXES)}, or a folder holding one DICOM series"
    )


def read_volume(path: str | os.PathLike, *, series: str | None = None) -> Volume:
    """Read a volume as stored: NIfTI (``.nii`` / ``.nii.gz``, through nibabel), NRRD
    (``.nrrd`` / ``.nhdr``) or MetaImage (``.mha`` / ``.mhd``) through SimpleITK, or a folder
    holding one DICOM series (SimpleITK's series reader: slices sorted by position, rescale
    applied).

    Args:
        path: the file, or the DICOM series folder.
        series: for a folder holding several DICOM series, the series id to read.

    Raises:
        ValueError: the name ends in none of :data:`VOLUME_SUFFIXES` and is not a folder.
        FileNotFoundError: no such file or folder.
        DataError: the file cannot be read, or it has fewer than 3 axes; a folder is empty,
            holds no DICOM series, or several (naming each) -- the message names the path.
    """
    path = Path(path)
    if path.is_dir():
        return Volume(*read_dicom_series(path, series=series), path=path)
    suffix = volume_suffix(path)
    if suffix is None:
        if not path.exists() and not path.suffix:  # a DICOM folder's name, most likely
            raise FileNotFoundError(f"{path} does not exist")
        raise _unknown_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if series is not None:
        raise ValueError(f"series={series!r} picks a DICOM series in a folder; {path} is a file")
    if suffix in ITK_SUFFIXES:
        return Volume(*read_itk_file(path), path=path)
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
    """Read a label volume (any format :func:`read_volume` reads): integer class indices
    ``(X, Y, Z)``.

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


def _check_writable(path: Path) -> str:
    """The suffix of a label file to write, or a ``ValueError`` saying what to write instead."""
    suffix = volume_suffix(path)
    if suffix is not None:
        return suffix
    if path.is_dir() or path.name.lower().endswith(DICOM_SUFFIXES):
        raise ValueError(
            f"{path}: writing DICOM is not supported; write the labels as NIfTI (.nii.gz) or "
            "NRRD (.nrrd) instead"
        )
    raise ValueError(
        f"{path} is not a NIfTI file or another volume segwise writes; expected a name ending "
        f"in {', '.join(VOLUME_SUFFIXES)}"
    )


def _nifti_header(like: Volume, dtype: np.dtype):
    """``like``'s NIfTI header, or for a volume read from another format a new one carrying
    its affine (sform and qform, code 1 = scanner) in mm."""
    nib = _nibabel()
    if isinstance(like.header, nib.Nifti1Header):  # Nifti2Header is one too
        header = like.header.copy()
    else:
        header = nib.Nifti1Header()
        header.set_sform(like.affine, code=1)
        header.set_qform(like.affine, code=1)
        header.set_xyzt_units("mm")
    header.set_data_dtype(dtype)
    return header


def write_labels(path: str | os.PathLike, labels: np.ndarray, *, like: Volume) -> Path:
    """Write ``labels (X, Y, Z)`` with ``like``'s geometry, in the format ``path``'s suffix
    names (``like`` may come from any format).

    The data type is set for labels: ``uint8`` when the values fit, else ``int16`` / ``int32``,
    with no intensity scaling.

    - NIfTI (``.nii`` / ``.nii.gz``): the header is ``like.header`` when ``like`` is NIfTI
      (sform, qform, their codes, units, description kept; the affine read back equals
      ``like.affine`` bit for bit), else a new header with ``like.affine`` as sform and qform.
    - NRRD / MetaImage (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``), through SimpleITK: origin,
      spacing and direction from ``like.affine`` (RAS+ converted back to ITK's LPS), compressed;
      the affine read back equals ``like.affine`` to about ``1e-12``.
    - DICOM is not written (refused; write NIfTI or NRRD).

    Args:
        path: where to write (parent folders are created).
        labels: ``(X, Y, Z)`` integer class indices (floats refused unless whole numbers),
            ``like``'s spatial shape.
        like: the image the labels belong to (from :func:`read_volume`).

    Returns:
        The path written.

    Raises:
        ValueError: a suffix other than the ones above (DICOM named), shape other than
            ``like.shape``, or non-integral labels.
    """
    path = Path(path)
    suffix = _check_writable(path)
    labels = np.asarray(labels)
    if labels.shape != like.shape:
        raise ValueError(
            f"labels of shape {labels.shape} cannot be written like {like.path}: expected its "
            f"spatial shape {like.shape}"
        )
    labels = _as_integer_labels(labels, f"labels for {path}")
    dtype = _smallest_label_dtype(int(labels.min()), int(labels.max())) if labels.size else (
        np.dtype(np.uint8))
    if suffix in ITK_SUFFIXES:
        return write_itk_labels(path, labels.astype(dtype), affine=like.affine)
    nib = _nibabel()
    header = _nifti_header(like, dtype)
    image = nib.Nifti1Image(labels.astype(dtype), None, header=header)  # affine from header
    image.header.set_slope_inter(1.0, 0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path
