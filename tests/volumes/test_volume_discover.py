"""Discovery of volume datasets: layouts, pairs, classes, normalisation, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.volumes.conftest import blob_pair, write_nifti, write_volume_dataset

from segwise.data import DataError, Severity, discover_dataset
from segwise.data.volume_norm import ct_statistics, normalize_volume
from segwise.enums import Normalization
from segwise.notices import SegwiseNotice


def test_msd_layout_pairs_nnunet_channel_suffix_and_reads_dataset_json(volume_data):
    index = discover_dataset(volume_data)
    info = index.info
    assert index.layout == "msd" and index.split_source == "splits.json"
    assert [s.id for s in index.train] == ["case_000", "case_001", "case_002", "case_003"]
    assert [s.id for s in index.val] == ["case_004", "case_005"]
    assert index.train[0].image_path.name == "case_000_0000.nii.gz"
    assert info.spatial_dims == 3 and info.in_channels == 1
    assert info.labels.names == ("background", "bright", "dark")
    assert info.classes_source == "dataset.json"
    assert info.normalization is Normalization.ZSCORE  # MRI
    assert info.spacing == (1.0, 1.0, 1.0) and info.median_size == (12, 14, 10)
    # voxels per class over all six label volumes: 2 boxes of 4x4x3 = 48 voxels each
    assert info.class_pixel_counts == (6 * (12 * 14 * 10 - 96), 6 * 48, 6 * 48)


def test_nnunet_v2_labels_and_ct_modality_give_the_ct_window(tmp_path):
    root = write_volume_dataset(tmp_path / "ct", modality="CT", layout="images")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "bright": 1, "dark": 2}}))
    index = discover_dataset(root)
    info = index.info
    assert index.layout == "volumes" and info.labels.names == ("background", "bright", "dark")
    assert info.normalization is Normalization.CT and info.clip is not None
    # the window and statistics are those of the training foreground (4 training volumes)
    from segwise.data.volumes import read_labels, read_volume
    pairs = [(read_volume(s.image_path).array[None], read_labels(s.mask_path).array)
             for s in index.train]
    clip, mean, std = ct_statistics(pairs, seed=0)
    assert info.clip == clip and info.mean == (mean,) and info.std == (std,)
    # --normalization zscore wins over the modality
    assert discover_dataset(root, normalization="zscore").info.normalization is \
        Normalization.ZSCORE


def test_ct_statistics_hand_computed():
    image = np.arange(1000, dtype=np.float32).reshape(1, 10, 10, 10)
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[0] = 1  # foreground values 0..99
    (lo, hi), mean, std = ct_statistics([(image, labels)])
    assert lo == pytest.approx(0.495) and hi == pytest.approx(98.505)
    clipped = np.clip(np.arange(100.0), 0.495, 98.505)
    assert mean == pytest.approx(clipped.mean()) and std == pytest.approx(clipped.std())
    out = normalize_volume(image[:, :1], "ct", mean=(mean,), std=(std,), clip=(lo, hi))
    assert out[0, 0, 0, 0] == pytest.approx((0.495 - mean) / std)


def test_zscore_is_per_volume_and_channel():
    x = np.stack([np.full((2, 2, 2), 5.0), np.arange(8.0).reshape(2, 2, 2)]).astype(np.float32)
    out = normalize_volume(x, "zscore")
    assert np.allclose(out[0], 0.0)  # constant channel: std floored, not divided by 0
    assert out[1].mean() == pytest.approx(0.0, abs=1e-6)
    assert out[1].std() == pytest.approx(1.0, abs=1e-5)


def test_geometry_mismatch_is_refused_naming_both_files(volume_data):
    labels = volume_data / "labelsTr" / "case_002.nii.gz"
    _, label = blob_pair(np.random.default_rng(1))
    write_nifti(labels, label, affine=np.diag([1.0, 1.0, 1.0, 1.0]) + np.eye(4, k=3) * 0.5)
    with pytest.raises(DataError) as err:
        discover_dataset(volume_data)
    text = str(err.value)
    assert "case_002.nii.gz" in text and "case_002_0000.nii.gz" in text and "affine" in text


def test_fractional_label_is_refused_naming_the_file_and_voxel(volume_data):
    path = volume_data / "labelsTr" / "case_001.nii.gz"
    _, label = blob_pair(np.random.default_rng(1))
    label = label.astype(np.float32)
    label[3, 4, 5] = 0.5
    write_nifti(path, label)
    with pytest.raises(DataError, match=r"case_001\.nii\.gz.*\(3, 4, 5\)"):
        discover_dataset(volume_data)


def test_label_beyond_the_classes_and_multi_file_channels_are_refused(volume_data):
    path = volume_data / "labelsTr" / "case_000.nii.gz"
    _, label = blob_pair(np.random.default_rng(1))
    label[0, 0, 0] = 7
    write_nifti(path, label)
    image, _ = blob_pair(np.random.default_rng(2))
    write_nifti(volume_data / "imagesTr" / "case_003_0001.nii.gz", image)
    with pytest.raises(DataError) as err:
        discover_dataset(volume_data)
    text = str(err.value)
    assert "label value(s) [7]" in text and "case_000.nii.gz" in text
    assert "2 channel files" in text and "4D NIfTI" in text


def test_without_dataset_json_classes_come_from_the_label_values(tmp_path):
    root = write_volume_dataset(tmp_path / "v", dataset_json=False, layout="images")
    with pytest.warns(UserWarning, match="inferred"):
        info = discover_dataset(root).info
    assert info.labels.names == ("background", "class_1", "class_2")
    assert info.normalization is Normalization.ZSCORE


def test_differing_spacings_are_reported(tmp_path):
    root = write_volume_dataset(tmp_path / "v", layout="images")
    image, label = blob_pair(np.random.default_rng(5))
    write_nifti(root / "images" / "case_000.nii.gz", image, spacing=(1.0, 1.0, 3.0))
    write_nifti(root / "labels" / "case_000.nii.gz", label, spacing=(1.0, 1.0, 3.0))
    # a notice (resampled), not a warning; still a UserWarning in library use
    with pytest.warns(SegwiseNotice, match=r"segwise notice: data: .*case_000\.nii\.gz: voxel "
                                           r"size \(1\.0, 1\.0, 3\.0\) mm, other than the "
                                           r"median \(1\.0, 1\.0, 1\.0\) mm; the volume is "
                                           "resampled to the median spacing for training.*"
                                           "predictions .* resampled back"):
        index = discover_dataset(root)
    assert index.info.spacing == (1.0, 1.0, 1.0)
    found = [p for p in index.problems if p.code == "spacing_differs"]
    assert [p.severity for p in found] == [Severity.INFO]
