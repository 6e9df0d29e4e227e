"""NIfTI volumes (segwise.data.volumes): the affine survives a round trip bit for bit, float
labels only when integral, geometry mismatches refused naming both files, orientation codes."""

from __future__ import annotations

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from segwise.data.info import DataError  # noqa: E402
from segwise.data.volumes import (  # noqa: E402
    check_geometry,
    read_labels,
    read_volume,
    write_labels,
)

# a sheared, rotated, translated affine whose entries are not round numbers
AFFINE = np.array([
    [0.7812345, 0.0123, 0.0, -101.337],
    [-0.0211, 0.7799, 0.1, 87.01],
    [0.0, -0.05, 3.3, -12.75],
    [0.0, 0.0, 0.0, 1.0],
])


def _write(path, array, affine=AFFINE, *, qform=None):
    image = nib.Nifti1Image(array, affine)
    if qform is not None:
        image.header.set_qform(qform, code=1)
    image.header.set_xyzt_units("mm")
    nib.save(image, path)
    return path


def test_label_round_trip_keeps_affine_and_header_bit_for_bit(tmp_path):
    qform = np.diag([0.78, 0.78, 3.3, 1.0])
    src = _write(tmp_path / "scan.nii.gz", np.random.rand(19, 23, 29).astype(np.float32),
                 qform=qform)
    image = read_volume(src)
    assert image.shape == (19, 23, 29)
    assert image.spacing == pytest.approx((0.78, 0.78, 3.3))  # the header's pixdim
    labels = np.zeros((19, 23, 29), dtype=np.int64)
    labels[3:9, 4:10, 5:20] = 2
    out = write_labels(tmp_path / "pred" / "scan.nii.gz", labels, like=image)
    back = read_labels(out)
    assert np.array_equal(back.affine, image.affine)  # bit for bit
    assert back.affine.tobytes() == image.affine.tobytes()
    written = nib.load(out).header
    for key in ("sform_code", "qform_code", "srow_x", "srow_y", "srow_z", "quatern_b",
                "quatern_c", "quatern_d", "qoffset_x", "pixdim", "xyzt_units"):
        assert np.array_equal(written[key], image.header[key]), key
    assert written.get_data_dtype() == np.uint8  # dtype set for labels, no scaling
    assert np.array_equal(back.array, labels) and back.array.dtype == np.uint8
    assert back.orientation == image.orientation


def test_labels_above_255_are_written_as_int16(tmp_path):
    image = read_volume(_write(tmp_path / "a.nii", np.zeros((3, 4, 5), np.int16)))
    labels = np.full((3, 4, 5), 300)
    back = read_labels(write_labels(tmp_path / "b.nii", labels, like=image))
    assert nib.load(tmp_path / "b.nii").get_data_dtype() == np.int16
    assert int(back.array.max()) == 300


def test_integral_float_labels_are_accepted(tmp_path):
    array = np.zeros((4, 5, 6), np.float32)
    array[1, 2, 3], array[2, 2, 2] = 1.0, 2.0
    labels = read_labels(_write(tmp_path / "lab.nii.gz", array))
    assert labels.array.dtype == np.uint8
    assert sorted(np.unique(labels.array)) == [0, 1, 2]


@pytest.mark.parametrize("bad", [0.5, np.nan])
def test_non_integral_float_labels_are_refused_naming_file_and_value(tmp_path, bad):
    array = np.zeros((4, 5, 6), np.float32)
    array[1, 2, 3] = bad
    path = _write(tmp_path / "lab.nii.gz", array)
    with pytest.raises(DataError, match=r"lab\.nii\.gz.*whole numbers.*voxel \(1, 2, 3\) holds "
                                        rf"{'0.5' if bad == 0.5 else 'nan'}"):
        read_labels(path)


def test_geometry_mismatch_is_refused_naming_both_files_and_both_affines(tmp_path):
    image = read_volume(_write(tmp_path / "img.nii.gz", np.zeros((4, 5, 6), np.float32)))
    moved = AFFINE.copy()
    moved[0, 3] += 2.0  # 2 mm off
    labels = read_labels(_write(tmp_path / "lab.nii.gz", np.zeros((4, 5, 6), np.uint8), moved))
    with pytest.raises(DataError) as err:
        check_geometry(image, labels)
    message = str(err.value)
    assert "lab.nii.gz" in message and "img.nii.gz" in message
    assert "-101.337" in message and "-99.337" in message and "by up to 2" in message
    # within the tolerance: the same grid
    near = AFFINE.copy()
    near[1, 3] += 1e-6
    check_geometry(image, read_labels(_write(tmp_path / "n.nii", np.zeros((4, 5, 6)), near)))
    other = read_labels(_write(tmp_path / "s.nii", np.zeros((4, 5, 7), np.uint8)))
    with pytest.raises(DataError, match=r"s\.nii.*shape \(4, 5, 7\).*img\.nii\.gz.*\(4, 5, 6\)"):
        check_geometry(image, other)


@pytest.mark.parametrize(("affine", "codes"), [
    (np.diag([1.0, 1.0, 1.0, 1.0]), "RAS"),
    (np.diag([-1.0, -1.0, 1.0, 1.0]), "LPS"),  # DICOM's patient axes
    (np.array([[0, 0, 2.0, 0], [1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]]), "AIR"),
])
def test_orientation_codes(tmp_path, affine, codes):
    volume = read_volume(_write(tmp_path / "o.nii", np.zeros((2, 3, 4), np.uint8), affine))
    assert volume.orientation == codes
    assert volume.spacing == (1.0, 1.0, 2.0) if codes == "AIR" else volume.spacing == (1, 1, 1)


def test_anisotropy_is_largest_over_smallest_spacing(tmp_path):
    volume = read_volume(_write(tmp_path / "a.nii", np.zeros((2, 3, 4), np.uint8),
                                np.diag([0.8, 0.8, 3.0, 1.0])))
    assert volume.anisotropy == pytest.approx(3.75)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"scan\.png is not a NIfTI file"):
        read_volume(tmp_path / "scan.png")
    with pytest.raises(FileNotFoundError, match=r"missing\.nii\.gz does not exist"):
        read_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(DataError, match=r"broken\.nii\.gz: cannot be read as NIfTI"):
        read_volume(tmp_path / "broken.nii.gz")
    flat = _write(tmp_path / "flat.nii", np.zeros((4, 5), np.uint8))
    with pytest.raises(DataError, match=r"flat\.nii: has shape \(4, 5\); expected a 3D"):
        read_volume(flat)
    image = read_volume(_write(tmp_path / "img.nii", np.zeros((4, 5, 6), np.uint8)))
    with pytest.raises(ValueError, match=r"shape \(4, 5\).*img\.nii.*\(4, 5, 6\)"):
        write_labels(tmp_path / "out.nii", np.zeros((4, 5)), like=image)
    with pytest.raises(DataError, match=r"whole numbers.*0\.25"):
        write_labels(tmp_path / "out.nii", np.full((4, 5, 6), 0.25), like=image)


@pytest.mark.slow
@pytest.mark.shared_data
def test_msd_hippocampus_pair(shared_data):
    root = shared_data / "msd_hippocampus"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    image = read_volume(root / "images" / "hippocampus_001.nii.gz")
    labels = read_labels(root / "labels" / "hippocampus_001.nii.gz")
    assert image.shape == labels.shape == (35, 51, 35)
    assert image.spacing == labels.spacing == (1.0, 1.0, 1.0)
    assert image.orientation == "RAS"
    check_geometry(image, labels)
    assert sorted(np.unique(labels.array)) == [0, 1, 2]
    # one of the two label files the Udacity copy stores as float32: accepted, integral
    floats = read_labels(root / "labels" / "hippocampus_003.nii.gz")
    assert floats.array.dtype == np.uint8
    assert sorted(np.unique(floats.array)) == [0, 1, 2]
