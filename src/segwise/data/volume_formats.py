"""Volume formats other than NIfTI: NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``, ``.mhd``)
and DICOM series (a folder), read and written through SimpleITK (the ``medical`` extra), plus the
file-name rules that say what a volume is.

This module is a backend: read and write volumes with :func:`segwise.data.volumes.read_volume`,
:func:`~segwise.data.volumes.read_labels` and :func:`~segwise.data.volumes.write_labels`, which
dispatch here by suffix and return the same :class:`~segwise.data.volumes.Volume` as for NIfTI.

Two conventions meet here, and this is the one place that converts between them:

- **Axis order.** SimpleITK indexes an image ``(x, y, z)`` but ``GetArrayFromImage`` returns
  ``(z, y, x)``; arrays are transposed back to ``(x, y, z)`` (``(x, y, z, C)`` for several
  components per pixel), the ``(i, j, k)`` voxel order NIfTI volumes have.
- **World space.** ITK's physical space is LPS (x towards Left, y Posterior, z Superior, mm);
  nibabel's affines map to RAS+. ``ras = diag(-1, -1, 1) @ lps``: the affine's first two rows
  are negated, so a NIfTI file and the same image saved as NRRD have the same affine and the
  same :attr:`~segwise.data.volumes.Volume.orientation`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segwise._lazy import import_extra
from segwise.data.info import DataError

__all__ = [
    "DICOM_SUFFIXES",
    "ITK_SUFFIXES",
    "NIFTI_SUFFIXES",
    "VOLUME_SUFFIXES",
    "ItkHeader",
    "is_dicom_folder",
    "is_volume_path",
    "itk_geometry",
    "ras_affine",
    "read_dicom_series",
    "read_itk_file",
    "volume_id",
    "volume_suffix",
    "write_itk_labels",
]

#: file name endings read as NIfTI (through nibabel)
NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: file name endings read and written through SimpleITK: NRRD and MetaImage (``.nhdr`` and
#: ``.mhd`` are headers whose voxels lie in a separate data file next to them)
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
#: every file name ending read as a volume; a DICOM series is a folder, not a suffix
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
#: endings of single DICOM files (one slice each: a volume is the folder holding its series)
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")

# ITK's LPS world <-> nibabel's RAS+ world: flip x and y (the matrix is its own inverse)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# a DICOM Part 10 file holds b"DICM" after a 128-byte preamble
_DICOM_MAGIC_OFFSET = 128
_DICOM_MAGIC = b"DICM"


def _sitk():
    return import_extra("SimpleITK", extra="medical",
                        purpose="reading NRRD, MetaImage and DICOM volumes")


@dataclass(frozen=True)
class ItkHeader:
    """What a volume read through SimpleITK keeps of its ``sitk.Image`` (``Volume.header``).

    Geometry is in ITK's own terms, as ``image.GetOrigin()`` etc. return it; ``Volume.affine``
    holds the same geometry converted to RAS+. Labels written ``like`` such a volume take their
    geometry from ``Volume.affine`` (so any volume can be ``like``), not from these fields.

    Attributes:
        origin: world position of voxel ``(0, 0, 0)``, LPS, mm.
        spacing: voxel size per image axis ``(sx, sy, sz)``, mm.
        direction: the direction cosines, row major (``dim * dim`` values), LPS.
        metadata: the image's key/value metadata (NRRD fields, MetaImage tags; for a DICOM
            series, the tags of its first slice as ``"gggg|eeee"`` keys), a copy. Not written
            into label files: an image's intensity and modality tags would misdescribe them.
    """

    origin: tuple[float, ...]
    spacing: tuple[float, ...]
    direction: tuple[float, ...]
    metadata: dict[str, str] = field(default_factory=dict)


def ras_affine(origin, spacing, direction) -> np.ndarray:
    """The ``(4, 4)`` voxel -> RAS+ affine of an ITK geometry (its first three axes).

    ITK maps index ``(i, j, k)`` to LPS ``origin + direction @ diag(spacing) @ (i, j, k)``;
    negating the first two rows of that affine gives RAS+. Example: spacing
    ``(0.5, 0.8, 3.0)``, origin ``(10, -20, 5)`` and identity direction give
    ``diag(-0.5, -0.8, 3.0)`` with translation ``(-10, 20, 5)``.

    Args:
        origin: LPS position of voxel ``(0, 0, 0)`` (at least 3 values).
        spacing: voxel sizes (at least 3 values).
        direction: row-major direction cosines, ``dim * dim`` values, ``dim >= 3``.
    """
    dim = round(len(direction) ** 0.5)
    cosines = np.asarray(direction, dtype=np.float64).reshape(dim, dim)[:3, :3]
    lps = np.eye(4)
    lps[:3, :3] = cosines * np.asarray(spacing[:3], dtype=np.float64)  # scales the columns
    lps[:3, 3] = np.asarray(origin[:3], dtype=np.float64)
    return _LPS_TO_RAS @ lps


def itk_geometry(affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...],
                                              tuple[float, ...]]:
    """``(origin, spacing, direction)`` in ITK's LPS terms for a voxel -> RAS+ ``affine``.

    The inverse of :func:`ras_affine`: spacing is each column's length, direction the columns
    divided by it (a sheared affine keeps its shear in the direction cosines).

    Raises:
        ValueError: an axis of the affine has zero length (no geometry to write).
    """
    lps = _LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    if not np.all(spacing > 0):
        raise ValueError(f"affine {np.asarray(affine).tolist()} has an axis of length 0")
    direction = lps[:3, :3] / spacing
    return (tuple(float(v) for v in lps[:3, 3]), tuple(float(v) for v in spacing),
            tuple(float(v) for v in direction.ravel()))


def volume_suffix(path: str | os.PathLike) -> str | None:
    """The volume suffix ``path``'s name ends in (lower case), or ``None``."""
    name = Path(path).name.lower()
    return next((suffix for suffix in VOLUME_SUFFIXES if name.endswith(suffix)), None)


def volume_id(path: str | os.PathLike) -> str:
    """A volume's name without its suffix: ``"case_001.nii.gz"`` -> ``"case_001"``; a DICOM
    series folder -> the folder's name.

    Raises:
        ValueError: a file whose name ends in none of :data:`VOLUME_SUFFIXES`.
    """
    path = Path(path)
    if path.is_dir():
        return path.name
    suffix = volume_suffix(path)
    if suffix is None:
        raise ValueError(
            f"{path} is not a volume file; expected a name ending in {', '.join(VOLUME_SUFFIXES)}"
            " or a folder holding a DICOM series"
        )
    return path.name[: -len(suffix)]


def _has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            file.seek(_DICOM_MAGIC_OFFSET)
            return file.read(len(_DICOM_MAGIC)) == _DICOM_MAGIC
    except OSError:
        return False


def is_dicom_folder(path: str | os.PathLike) -> bool:
    """A folder directly holding a ``.dcm`` file, or a file with DICOM's ``DICM`` marker at
    byte 128 (series are often stored without suffixes). Hidden files and files with a volume
    suffix are not opened; the search stops at the first DICOM file."""
    path = Path(path)
    if not path.is_dir():
        return False
    for entry in sorted(path.iterdir()):
        name = entry.name.lower()
        if name.startswith(".") or not entry.is_file() or volume_suffix(entry):
            continue
        if name.endswith(DICOM_SUFFIXES) or _has_dicom_magic(entry):
            return True
    return False


def is_volume_path(path: str | os.PathLike) -> bool:
    """A file whose name ends in one of :data:`VOLUME_SUFFIXES`, or a DICOM series folder
    (:func:`is_dicom_folder`)."""
    path = Path(path)
    if path.is_dir():
        return is_dicom_folder(path)
    return path.is_file() and volume_suffix(path) is not None


def _itk_message(err: Exception) -> str:
    """The last line of an ITK exception without its ``sitk::ERROR:`` prefix (ITK messages
    begin with the C++ source file and line)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else type(err).__name__
    for prefix in ("sitk::ERROR:", "ITK ERROR:"):
        if last.startswith(prefix):
            last = last[len(prefix):].strip()
    return last


def _parts(image, where: Path, metadata: dict[str, str]):
    """``(array, spacing, affine, header)`` of a ``sitk.Image``: the array in ``(x, y, z[, C])``
    order, spacing of the first three axes, the RAS+ affine and an :class:`ItkHeader`."""
    sitk = _sitk()
    dim = image.GetDimension()
    components = image.GetNumberOfComponentsPerPixel()
    array = sitk.GetArrayFromImage(image)  # (z, y, x) or (z, y, x, C); a 4D image (t, z, y, x)
    if components > 1:
        array = array.transpose((*reversed(range(dim)), dim))  # (x, y, z, C)
    else:
        array = array.transpose(tuple(reversed(range(dim))))  # (x, y, z[, t]); t read as C
    if array.ndim not in (3, 4) or dim < 3:
        kind = f"{dim}D image with {components} component(s) per voxel"
        raise DataError(
            f"{where}: has shape {array.shape} ({kind}); expected a 3D volume (X, Y, Z[, C])"
        )
    header = ItkHeader(
        origin=tuple(float(v) for v in image.GetOrigin()),
        spacing=tuple(float(v) for v in image.GetSpacing()),
        direction=tuple(float(v) for v in image.GetDirection()),
        metadata=dict(metadata),
    )
    affine = ras_affine(header.origin, header.spacing, header.direction)
    return array, header.spacing[:3], affine, header


def read_itk_file(path: Path):
    """Read one NRRD / MetaImage file: ``(array, spacing, affine, header)`` for a ``Volume``.

    The array is ``(X, Y, Z)`` in the file's voxel order (``(X, Y, Z, C)`` for several components
    per voxel, or for a 4D image, whose fourth axis becomes channels as in NIfTI), dtype as
    stored; spacing is ``image.GetSpacing()``; the affine maps voxels to RAS+ mm.

    Raises:
        DataError: SimpleITK cannot read the file, or it is not 3D (names the file).
    """
    sitk = _sitk()
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise DataError(f"{path}: cannot be read by SimpleITK ({_itk_message(err)})") from err
    metadata = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys()}
    return _parts(image, path, metadata)


def _series_ids(folder: Path) -> dict[str, tuple[str, ...]]:
    """Each DICOM series id (GDCM's: the SeriesInstanceUID) in ``folder`` -> its files, sorted
    along the slice normal by position (GDCM's order, not the file names')."""
    reader = _sitk().ImageSeriesReader
    return {sid: tuple(reader.GetGDCMSeriesFileNames(str(folder), sid))
            for sid in reader.GetGDCMSeriesIDs(str(folder))}


def read_dicom_series(folder: Path, *, series: str | None = None):
    """Read the DICOM series in ``folder``: ``(array, spacing, affine, header)`` for a ``Volume``.

    Slices are ordered by their position along the slice normal (ImagePositionPatient and
    ImageOrientationPatient), whatever the files are called; spacing between slices comes
    from those positions. Each slice's RescaleSlope/RescaleIntercept is applied (CT in HU).

    The dtype is what the rescaled values need: the stored integer type when there is no
    rescale (slope 1, intercept 0), a wider integer type (GDCM picks ``int32`` for CT's
    ``uint16``/``int16`` with intercept -1024) when slope and intercept are whole numbers, and
    ``float32`` when either has a fraction.

    Args:
        folder: a folder directly holding the series' files (subfolders are not searched).
        series: the series id to read when the folder holds several (the error lists them).

    Raises:
        DataError: the folder is empty, holds no DICOM series, holds several and ``series``
            is not given (names each id and its file count), or ``series`` is not among them;
            or GDCM cannot read a file.
    """
    sitk = _sitk()
    ids = _series_ids(folder)
    if not ids:
        if not any(folder.iterdir()):
            raise DataError(f"{folder}: is an empty folder; expected the files of a DICOM series")
        raise DataError(
            f"{folder}: holds no DICOM series (no file GDCM reads as DICOM); a DICOM volume is "
            "a folder holding its slices' files"
        )
    listing = ", ".join(f"{sid} ({len(files)} files)" for sid, files in ids.items())
    if series is None and len(ids) > 1:
        first = next(iter(ids))
        raise DataError(
            f"{folder}: holds {len(ids)} DICOM series: {listing}; read one with "
            f"read_volume(folder, series='{first}'), or move each series into its own folder"
        )
    if series is not None and series not in ids:
        raise DataError(f"{folder}: has no DICOM series {series!r}; it holds {listing}")
    files = ids[series if series is not None else next(iter(ids))]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise DataError(
            f"{folder}: DICOM series cannot be read by SimpleITK ({_itk_message(err)})"
        ) from err
    if image.GetPixelID() in (sitk.sitkFloat64, sitk.sitkVectorFloat64):
        image = sitk.Cast(image, sitk.sitkFloat32 if image.GetNumberOfComponentsPerPixel() == 1
                          else sitk.sitkVectorFloat32)
    metadata = {key: reader.GetMetaData(0, key) for key in reader.GetMetaDataKeys(0)}
    return _parts(image, folder, metadata)


def write_itk_labels(path: Path, labels: np.ndarray, *, affine: np.ndarray) -> Path:
    """Write ``labels (X, Y, Z)`` (already integer, the dtype to store) through SimpleITK, with
    the geometry of the voxel -> RAS+ ``affine`` converted to ITK's origin, spacing and
    direction. Compressed (``.nhdr`` / ``.mhd`` write their data file next to the header).

    Returns:
        The path written.
    """
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))  # (z, y, x)
    origin, spacing, direction = itk_geometry(affine)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sitk.WriteImage(image, str(path), True)
    except RuntimeError as err:  # pragma: no cover - a full disk or a read-only folder
        raise OSError(f"{path}: cannot be written by SimpleITK ({_itk_message(err)})") from err
    return path
