"""Volume patches: padding crop, forced foreground, 3D augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from segwise.data import discover_dataset
from segwise.data.volume_augment import SpatialDraw, VolumeAugment
from segwise.data.volume_dataset import VolumeDataset, VolumePatchDataset, crop_padded


def test_crop_padded_hand_values():
    a = np.arange(2 * 3 * 4).reshape(1, 2, 3, 4)
    out = crop_padded(a, (-1, 1, 2), (2, 2, 3), fill=-7)
    assert out.shape == (1, 2, 2, 3)
    # first D slice is outside (padding); the second is a[0, 0, 1:3, 2:4] then one padded column
    assert (out[0, 0] == -7).all()
    assert out[0, 1].tolist() == [[6, 7, -7], [10, 11, -7]]
    assert (crop_padded(a, (5, 0, 0), (1, 1, 1), fill=3) == 3).all()  # wholly outside


def test_forced_foreground_patches_are_centred_on_a_labelled_voxel(volume_data):
    index = discover_dataset(volume_data)
    ds = VolumePatchDataset(index.train, index.info, patch_size=(5, 5, 5),
                            foreground_fraction=1.0)
    np.random.seed(0)
    classes = set()
    for _ in range(40):
        item = ds[np.random.randint(len(ds))]
        centre = int(item["mask"][2, 2, 2])
        assert centre in (1, 2)
        classes.add(centre)
        assert item["image"].shape == (1, 5, 5, 5) and item["mask"].dtype.is_floating_point is False
    assert classes == {1, 2}  # a class drawn uniformly among those present


def test_random_patches_are_mostly_background_and_pad_with_the_pad_label(volume_data):
    index = discover_dataset(volume_data)
    pad = index.info.labels.pad_value
    ds = VolumePatchDataset(index.train, index.info, patch_size=(16, 16, 16),
                            foreground_fraction=0.0)
    np.random.seed(1)
    item = ds[0]  # the volume (12, 14, 10) is smaller than the patch on every axis
    mask = item["mask"].numpy()
    assert (mask == pad).sum() == 16**3 - 12 * 14 * 10
    assert set(np.unique(mask)) <= {0, 1, 2, pad}
    # the image is z-scored per volume: the volume's voxels have mean 0 and std 1
    image = item["image"].numpy()[0][mask != pad]
    assert abs(image.mean()) < 1e-4 and image.std() == pytest.approx(1.0, abs=1e-3)


def test_whole_volumes_carry_their_spacing(volume_data):
    index = discover_dataset(volume_data)
    item = VolumeDataset(index.val, index.info)[0]
    assert item["image"].shape == (1, 12, 14, 10) and item["mask"].shape == (12, 14, 10)
    assert item["spacing"] == (1.0, 1.0, 1.0) and item["id"] == "case_004"


def test_odd_turns_cut_a_box_with_h_and_w_swapped_and_return_the_patch():
    aug = VolumeAugment((4, 6, 8), flips=False, scale=None, intensity=False)
    image = np.arange(4 * 8 * 6, dtype=np.float32).reshape(1, 4, 8, 6)
    labels = (image[0] % 3).astype(np.int64)
    out, lab = aug(image, labels, SpatialDraw((4, 8, 6), turns=1))
    assert out.shape == (1, 4, 6, 8) and lab.shape == (4, 6, 8)
    assert np.array_equal(out[0], np.rot90(image[0], 1, axes=(-2, -1)))
    assert np.array_equal(lab, np.rot90(labels, 1, axes=(-2, -1)))
    np.random.seed(0)
    assert {aug.draw().source_size for _ in range(50)} == {(4, 6, 8), (4, 8, 6)}
    still = VolumeAugment((4, 6, 8), rotate_in_plane=False, scale=None)
    assert {still.draw().source_size for _ in range(20)} == {(4, 6, 8)}


def test_scaling_resizes_labels_by_nearest_and_keeps_their_values():
    aug = VolumeAugment((8, 8, 8), flips=False, rotate_in_plane=False, intensity=False,
                        scale=(0.5, 0.5), scale_probability=1.0)
    np.random.seed(0)
    draw = aug.draw()
    assert draw.source_size == (16, 16, 16) and draw.turns == 0
    labels = np.zeros((16, 16, 16), np.int64)
    labels[:8] = 2
    image = labels[None].astype(np.float32)
    out, lab = aug(image, labels, draw)
    assert out.shape == (1, 8, 8, 8) and set(np.unique(lab)) == {0, 2}
    assert (lab[:4] == 2).all() and (lab[4:] == 0).all()


def test_flips_keep_image_and_labels_aligned():
    aug = VolumeAugment((5, 6, 7), rotate_in_plane=False, scale=None, intensity=False)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (5, 6, 7))
    image = labels[None].astype(np.float32) * 10
    np.random.seed(3)
    for _ in range(8):
        out, lab = aug(image, labels, aug.draw())
        assert np.array_equal(out[0], lab * 10.0)
