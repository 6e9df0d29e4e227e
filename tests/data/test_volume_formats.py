"""NRRD, MetaImage and DICOM series through SimpleITK (segwise.data.volume_formats behind
segwise.data.volumes): (x, y, z) axis order, ITK's LPS converted to nibabel's RAS (hand-computed
affine; a NIfTI file and its NRRD copy agree), label round trips across formats, DICOM slices
sorted by position and rescaled, the suffix helpers, and errors that name the file."""

from __future__ import annotations

import locale
import random

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
sitk = pytest.importorskip("SimpleITK")

from segwise.data.info import DataError  # noqa: E402
from segwise.data.volume_formats import ItkHeader, itk_geometry, ras_affine  # noqa: E402
from segwise.data.volumes import (  # noqa: E402
    VOLUME_SUFFIXES,
    check_geometry,
    is_volume_path,
    read_labels,
    read_volume,
    volume_id,
    write_labels,
)

ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
# spacing (0.5, 0.8, 3.0), origin (10, -20, 5) LPS, identity direction, by hand in RAS:
# x and y flip sign, on the diagonal and in the translation
HAND_RAS = np.array([
    [-0.5, 0.0, 0.0, -10.0],
    [0.0, -0.8, 0.0, 20.0],
    [0.0, 0.0, 3.0, 5.0],
    [0.0, 0.0, 0.0, 1.0],
])
# a sheared, rotated, translated affine whose entries are not round numbers
SHEARED = np.array([
    [0.7812345, 0.0123, 0.0, -101.337],
    [-0.0211, 0.7799, 0.1, 87.01],
    [0.0, -0.05, 3.3, -12.75],
    [0.0, 0.0, 0.0, 1.0],
])


def _xyz(shape=(4, 5, 6), dtype=np.int16):
    """An array indexed (x, y, z) whose every voxel holds a different value."""
    return np.arange(np.prod(shape)).reshape(shape).astype(dtype)


def _itk_image(array_xyz, *, spacing=(0.5, 0.8, 3.0), origin=(10.0, -20.0, 5.0)):
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz.transpose(2, 1, 0)))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def _rotated_affine():
    """An orthonormal rotation (about z by 30 degrees, then x by 10) times spacing, translated:
    what both nibabel and ITK's NIfTI reader keep exactly (no shear)."""
    a, b = np.radians(30.0), np.radians(10.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rx @ rz @ np.diag([0.9, 1.1, 2.5])
    affine[:3, 3] = (-30.25, 12.5, 7.75)
    return affine


def _nifti(path, array, affine):
    image = nib.Nifti1Image(array, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    nib.save(image, path)
    return path


def _dicom_series(folder, array_xyz, *, uid="1.2.826.0.1.3680043.2.1125.7", z0=5.0,
                  spacing=(0.5, 0.8, 3.0), slope="1", intercept="0", names=None):
    """One DICOM file per slice k (axial, identity orientation), as a scanner writes them:
    position, orientation, thickness, series UID and instance number in the tags; files named
    ``names[k]`` (shuffled by the caller) so their order says nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"slice_{k:03d}.dcm" for k in range(array_xyz.shape[2])]
    extra = {}
    if array_xyz.dtype.kind == "f":  # GDCM stores floats as int16 under the rescale given
        extra = {"0028|0100": "16", "0028|0101": "16", "0028|0102": "15", "0028|0103": "1"}
    for k in range(array_xyz.shape[2]):
        image = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz[:, :, k].T))  # (y, x)
        image.SetSpacing(spacing[:2])
        tags = {
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",  # study
            "0020|000e": uid,  # series
            "0008|0018": f"{uid}.{k + 1}",  # this slice
            "0020|0013": str(k + 1),  # instance number
            "0020|0032": f"10\\-20\\{z0 + spacing[2] * k}",  # ImagePositionPatient
            "0020|0037": "1\\0\\0\\0\\1\\0",  # ImageOrientationPatient
            "0018|0050": str(spacing[2]),  # SliceThickness
            "0028|1053": slope,
            "0028|1052": intercept,
            **extra,
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.SetImageIO("GDCMImageIO")  # names need not end in .dcm
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / names[k]))
        saved = locale.setlocale(locale.LC_ALL)
        try:  # GDCM's writer sets the process locale to "C" (ASCII file encoding for Python)
            writer.Execute(image)
        finally:
            locale.setlocale(locale.LC_ALL, saved)
    return folder


def test_itk_geometry_to_ras_by_hand():
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    affine = ras_affine((10.0, -20.0, 5.0), (0.5, 0.8, 3.0), identity)
    assert np.array_equal(affine, HAND_RAS)
    origin, spacing, direction = itk_geometry(HAND_RAS)
    assert origin == (10.0, -20.0, 5.0) and spacing == (0.5, 0.8, 3.0)
    assert direction == identity


@pytest.mark.parametrize("suffix", ITK_SUFFIXES)
def test_itk_files_read_in_xyz_order_with_ras_affine(tmp_path, suffix):
    array = _xyz()
    image = _itk_image(array)
    path = tmp_path / f"case_001{suffix}"
    sitk.WriteImage(image, str(path))
    volume = read_volume(path)
    assert volume.shape == (4, 5, 6) and volume.array.dtype == np.int16
    assert np.array_equal(volume.array, array)
    assert volume.array[3, 1, 4] == image.GetPixel(3, 1, 4)  # ITK indexes (x, y, z) too
    assert volume.spacing == (0.5, 0.8, 3.0)
    assert np.allclose(volume.affine, HAND_RAS, rtol=0, atol=1e-12)
    assert volume.orientation == "LPS"  # ITK's identity direction: x to Left, y Posterior
    assert volume.path == path
    assert isinstance(volume.header, ItkHeader)
    assert volume.header.origin == (10.0, -20.0, 5.0)
    assert volume.header.spacing == (0.5, 0.8, 3.0)
    assert volume.header.direction == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert isinstance(volume.header.metadata, dict)


def test_nifti_and_its_nrrd_copy_have_the_same_affine(tmp_path):
    affine = _rotated_affine()
    array = np.random.rand(7, 8, 9).astype(np.float32)
    nii = _nifti(tmp_path / "scan.nii.gz", array, affine)
    nrrd = tmp_path / "scan.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(nii)), str(nrrd))  # SimpleITK's own conversion
    from_nifti, from_nrrd = read_volume(nii), read_volume(nrrd)
    assert np.allclose(from_nrrd.affine, from_nifti.affine, rtol=0, atol=1e-5)
    assert from_nrrd.orientation == from_nifti.orientation
    assert from_nrrd.spacing == pytest.approx(from_nifti.spacing, abs=1e-5)
    assert np.array_equal(from_nrrd.array, from_nifti.array)
    check_geometry(from_nifti, from_nrrd)


@pytest.mark.parametrize("suffix", ITK_SUFFIXES)
@pytest.mark.parametrize("affine", [SHEARED, _rotated_affine()], ids=["sheared", "rotated"])
def test_labels_written_as_itk_like_a_nifti_volume_keep_its_geometry(tmp_path, suffix, affine):
    image = read_volume(_nifti(tmp_path / "img.nii.gz", np.zeros((5, 6, 7), np.float32), affine))
    labels = np.zeros((5, 6, 7), np.int64)
    labels[1:4, 2:5, 3:6] = 2
    labels[0, 0, 0] = 1
    out = write_labels(tmp_path / "pred" / f"img{suffix}", labels, like=image)
    back = read_labels(out)
    assert np.allclose(back.affine, image.affine, rtol=0, atol=1e-6)
    assert back.array.dtype == np.uint8 and np.array_equal(back.array, labels)
    assert back.orientation == image.orientation
    check_geometry(image, back)


def test_large_labels_and_nifti_written_like_an_itk_volume(tmp_path):
    path = tmp_path / "img.mha"
    sitk.WriteImage(_itk_image(_xyz()), str(path))
    image = read_volume(path)
    labels = np.zeros((4, 5, 6), np.int64)
    labels[2, 3, 4] = 300
    back = read_labels(write_labels(tmp_path / "big.nrrd", labels, like=image))
    assert back.array.dtype == np.int16 and np.array_equal(back.array, labels)
    nifti = read_labels(write_labels(tmp_path / "big.nii.gz", labels, like=image))
    assert np.allclose(nifti.affine, HAND_RAS, rtol=0, atol=1e-6)  # float32 sform
    assert nifti.orientation == "LPS" and np.array_equal(nifti.array, labels)
    assert nib.load(tmp_path / "big.nii.gz").header["sform_code"] == 1


def test_multi_component_and_4d_images_get_a_trailing_channel_axis(tmp_path):
    rgb = np.random.randint(0, 255, (4, 5, 6, 3)).astype(np.uint8)  # (x, y, z, C)
    vector = sitk.GetImageFromArray(np.ascontiguousarray(rgb.transpose(2, 1, 0, 3)),
                                    isVector=True)
    sitk.WriteImage(vector, str(tmp_path / "rgb.mha"))
    volume = read_volume(tmp_path / "rgb.mha")
    assert volume.array.shape == (4, 5, 6, 3) and np.array_equal(volume.array, rgb)
    frames = [_itk_image(_xyz() + 100 * t) for t in range(2)]
    sitk.WriteImage(sitk.JoinSeries(frames), str(tmp_path / "time.nrrd"))  # 4D (x, y, z, t)
    volume = read_volume(tmp_path / "time.nrrd")
    assert volume.array.shape == (4, 5, 6, 2)
    assert np.array_equal(volume.array[..., 1], _xyz() + 100)
    assert volume.spacing == (0.5, 0.8, 3.0)
    assert np.allclose(volume.affine, HAND_RAS, rtol=0, atol=1e-12)
    with pytest.raises(DataError, match=r"time\.nrrd.*expected \(X, Y, Z\)"):
        read_labels(tmp_path / "time.nrrd")


def test_dicom_series_is_sorted_by_position_and_rescaled(tmp_path):
    array = _xyz((4, 5, 6))  # stored value = HU + 1024
    names = [f"IM{n:04d}" for n in range(6)]
    random.Random(3).shuffle(names)  # file names in an order unrelated to the slices'
    assert names != sorted(names)
    folder = _dicom_series(tmp_path / "ct_007", array - 1024, intercept="-1024", names=names)
    volume = read_volume(folder)
    assert volume.path == folder and volume.shape == (4, 5, 6)
    assert np.array_equal(volume.array, array - 1024)  # slice k is z = 5 + 3k, rescaled
    assert volume.array.dtype == np.int32  # an integer rescale widens int16 (documented)
    assert volume.spacing == pytest.approx((0.5, 0.8, 3.0))
    assert volume.header.origin == pytest.approx((10.0, -20.0, 5.0))
    assert np.allclose(volume.affine, HAND_RAS, rtol=0, atol=1e-9)
    assert volume.header.metadata["0020|000e"] == "1.2.826.0.1.3680043.2.1125.7"
    # the stored pixels really are HU + 1024: the first slice's last 4x5 int16 values
    first = folder / names[0]
    stored = np.frombuffer(first.read_bytes()[-2 * 20:], np.int16).reshape(5, 4).T
    assert np.array_equal(stored, array[:, :, 0])
    assert volume_id(folder) == "ct_007" and is_volume_path(folder)


def test_dicom_fractional_rescale_is_float32(tmp_path):
    values = (_xyz((3, 4, 5)).astype(np.float32) - 7) * 0.25 - 3.5
    folder = _dicom_series(tmp_path / "mr", values, slope="0.25", intercept="-3.5")
    volume = read_volume(folder)
    assert volume.array.dtype == np.float32 and np.array_equal(volume.array, values)


def test_dicom_folder_errors(tmp_path):
    both = tmp_path / "both"
    _dicom_series(both, _xyz((3, 4, 5)), uid="1.2.3.4.1",
                  names=[f"a{k}.dcm" for k in range(5)])
    _dicom_series(both, _xyz((3, 4, 2)), uid="1.2.3.4.2",
                  names=[f"b{k}.dcm" for k in range(2)])
    with pytest.raises(DataError) as err:
        read_volume(both)
    message = str(err.value)
    assert "both: holds 2 DICOM series" in message
    assert "1.2.3.4.1 (5 files)" in message and "1.2.3.4.2 (2 files)" in message
    assert "series=" in message and "its own folder" in message
    assert read_volume(both, series="1.2.3.4.2").shape == (3, 4, 2)
    with pytest.raises(DataError, match=r"no DICOM series '9\.9'.*1\.2\.3\.4\.1 \(5 files\)"):
        read_volume(both, series="9.9")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: is an empty folder"):
        read_volume(tmp_path / "empty")
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "a.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"pngs: holds no DICOM series"):
        read_volume(tmp_path / "pngs")
    with pytest.raises(ValueError, match=r"a0\.dcm is not a NIfTI file.*one slice: pass the "
                                         r"folder"):
        read_volume(both / "a0.dcm")


def test_itk_errors_name_the_file(tmp_path):
    (tmp_path / "broken.nrrd").write_bytes(b"not an nrrd file")
    with pytest.raises(DataError, match=r"broken\.nrrd: cannot be read by SimpleITK \(Unable"):
        read_volume(tmp_path / "broken.nrrd")
    with pytest.raises(FileNotFoundError, match=r"missing\.mha does not exist"):
        read_volume(tmp_path / "missing.mha")
    with pytest.raises(FileNotFoundError, match=r"no_such_series does not exist"):
        read_volume(tmp_path / "no_such_series")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5), np.uint8)), str(tmp_path / "f.mha"))
    with pytest.raises(DataError, match=r"f\.mha: has shape \(5, 4\).*expected a 3D volume"):
        read_volume(tmp_path / "f.mha")
    image = read_volume(_nifti(tmp_path / "img.nii", np.zeros((2, 3, 4), np.uint8), np.eye(4)))
    with pytest.raises(ValueError, match=r"series='x' picks a DICOM series in a folder"):
        read_volume(tmp_path / "img.nii", series="x")
    for target in (tmp_path / "out.dcm", tmp_path / "empty_dir"):
        if target.suffix == "":
            target.mkdir()
        with pytest.raises(ValueError, match=r"writing DICOM is not supported.*NIfTI.*NRRD"):
            write_labels(target, np.zeros((2, 3, 4), np.uint8), like=image)
    with pytest.raises(ValueError, match=r"out\.png is not a NIfTI file.*\.nrrd"):
        write_labels(tmp_path / "out.png", np.zeros((2, 3, 4), np.uint8), like=image)


def test_suffix_helpers(tmp_path):
    assert VOLUME_SUFFIXES == (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
    for name, stem in [("case_001.nii.gz", "case_001"), ("case_001.nii", "case_001"),
                       ("CT.Scan.NRRD", "CT.Scan"), ("a.nhdr", "a"), ("a.b.mha", "a.b"),
                       ("x.mhd", "x")]:
        assert volume_id(name) == stem
        (tmp_path / name).write_bytes(b"")
        assert is_volume_path(tmp_path / name)
    with pytest.raises(ValueError, match=r"scan\.png is not a volume file"):
        volume_id("scan.png")
    (tmp_path / "scan.png").write_bytes(b"")
    assert not is_volume_path(tmp_path / "scan.png")
    assert not is_volume_path(tmp_path / "absent.nii.gz")  # a volume path names a file
    # folders: .dcm files, or suffixless files with "DICM" at byte 128, or neither
    for folder, name, content in [("by_suffix", "IM1.DCM", b""),
                                  ("by_magic", "IM1", b"\0" * 128 + b"DICM" + b"\0" * 8),
                                  ("plain", "notes.txt", b"\0" * 128 + b"NOPE"),
                                  ("nifti", "a.nii", b"\0" * 128 + b"DICM")]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_bytes(content)
        assert is_volume_path(tmp_path / folder) == (folder.startswith("by_")), folder
        assert volume_id(tmp_path / folder) == folder
