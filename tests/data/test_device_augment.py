"""Augmentation on the training device (run here on CPU tensors), and its agreement with the
CPU pipeline: markers move with masks, padding carries the pad label, the random draws follow
the preset, and CPU and device warps agree for the same draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from segwise.data import DataInfo, SegmentationDataset, discover_dataset
from segwise.data.affine import AffineRanges, output_to_source, sample_affine
from segwise.data.device_augment import (
    DeviceAugment,
    ItemSize,
    ResidentBatches,
    hsv_hue_shift,
)
from segwise.data.synthetic import write_synthetic_dataset
from segwise.data.transforms import RandomAffineCrop
from segwise.labels import LabelSpace


def _info(ignore_index=None) -> DataInfo:
    labels = LabelSpace(task="multiclass", names=("a", "b", "c"), colors=((0, 0, 0),) * 3,
                        ignore_index=ignore_index)
    return DataInfo(labels=labels, in_channels=3, mask_kind="index", mean=(0.5,) * 3,
                    std=(0.25,) * 3)


def _marker_batch(n=4, h=40, w=50):
    """uint8 images whose channel 0 (1) is 255 exactly where the mask is 1 (2)."""
    mask = torch.zeros(n, h, w, dtype=torch.int64)
    mask[:, 5:15, 8:30] = 1
    mask[:, 25:35, 30:45] = 2
    image = torch.zeros(n, 3, h, w, dtype=torch.uint8)
    image[:, 0] = (mask == 1).to(torch.uint8) * 255
    image[:, 1] = (mask == 2).to(torch.uint8) * 255
    return image, mask


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x * 0.25 + 0.5  # undo _info()'s normalisation


@pytest.mark.parametrize("kernels", ["torch", "opencv"])
@pytest.mark.parametrize("seed", range(3))
def test_marker_moves_with_the_mask(seed, kernels):
    aug = DeviceAugment(_info(), crop_size=(32, 32), scale=(0.7, 1.5), hflip=True, vflip=True,
                        rotation=30, seed=seed, kernels=kernels)
    images, masks = _marker_batch()
    x, m = aug(images, masks)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert m.shape == (4, 32, 32) and m.dtype == torch.int64
    assert set(m.unique().tolist()) <= {0, 1, 2, 3}  # 3 = pad (the first value after the classes)
    img = _unit(x)
    for k in range(4):
        for label, channel in ((1, 0), (2, 1)):
            inside = m[k] == label
            if inside.sum() > 4:
                assert img[k, channel][inside].mean() > 0.7
        background = m[k] == 0
        if background.any():
            assert img[k, :2][:, background].mean() < 0.3


@pytest.mark.parametrize("kernels", ["torch", "opencv"])
def test_padded_pixels_carry_the_pad_label_and_the_mean(kernels):
    """No scaling or rotation, a crop larger than the items: exactly the pixels outside each
    item (its own size, not the padded batch) are padding."""
    aug = DeviceAugment(_info(ignore_index=7), crop_size=(60, 70), scale=(1, 1), hflip=False,
                        kernels=kernels)
    images, masks = _marker_batch(n=2)
    masks[1, 30:, :] = 0  # item 1 is only 30 x 40: the rest is the collate's padding
    masks[1, :, 40:] = 0
    images[1, :, 30:, :] = 0
    images[1, :, :, 40:] = 0
    x, m = aug(images, masks, sizes=[(40, 50), (30, 40)])
    assert (m[0] == 7).sum() == 60 * 70 - 40 * 50
    assert (m[1] == 7).sum() == 60 * 70 - 30 * 40
    for k in range(2):  # the mean, normalised (to 8 bits with OpenCV: round(0.5 * 255) = 128)
        assert torch.allclose(x[k][:, m[k] == 7], torch.tensor(0.0), atol=1 / 255 / 0.25)
        assert (m[k] == 1).sum() == 10 * 22  # the markers arrive whole (an exact copy)


@pytest.mark.parametrize("kernels", ["torch", "opencv"])
def test_scale_two_magnifies_the_marker_four_times(kernels):
    aug = DeviceAugment(_info(), crop_size=(80, 100), scale=(2, 2), hflip=False,
                        kernels=kernels)
    images, masks = _marker_batch(n=1)
    _, m = aug(images, masks)
    assert (m == 1).sum() == 4 * 10 * 22 and (m == 2).sum() == 4 * 10 * 15


def test_draws_follow_the_preset():
    """Scales log-uniform in the range, angles uniform in [-r, r], flips at p = 1/2, read back
    from the composed matrices (|det| = 1/s^2; the rotation angle of the linear part)."""
    from scipy import stats

    ranges = AffineRanges(crop_size=(32, 32), scale=(0.5, 2.0), rotation=10, hflip=True)
    g = torch.Generator().manual_seed(0)
    n = 4000
    params = sample_affine(n, ranges, generator=g)
    inv = output_to_source(params, np.tile([64, 64], (n, 1)), (32, 32))
    lin = inv[:, :, :2]
    det = np.linalg.det(lin)
    scale = 1 / np.sqrt(np.abs(det))
    flipped = det < 0
    assert abs(flipped.mean() - 0.5) < 0.03
    lo, hi = math.log(0.5), math.log(2.0)
    assert stats.kstest(np.log(scale), stats.uniform(lo, hi - lo).cdf).pvalue > 0.01
    # undo the flip, then the angle of (1/s) R^T is atan2 of its first column
    unflipped = lin.copy()
    unflipped[flipped, :, 0] *= -1
    angle = np.degrees(np.arctan2(unflipped[:, 1, 0], unflipped[:, 0, 0]))
    assert np.abs(angle).max() <= 10 + 1e-9
    assert stats.kstest(angle, stats.uniform(-10, 20).cdf).pvalue > 0.01


def test_cpu_and_device_warps_agree_for_the_same_draws():
    """One item: the CPU transform draws from the global RNG, the device one from its
    generator; seeded alike, both compose the same matrix, and OpenCV and grid_sample
    resample alike (nearest ties may differ on a few pixels)."""
    info = _info(ignore_index=9)
    images, masks = _marker_batch(n=1, h=48, w=64)
    images[0, 2] = torch.arange(64, dtype=torch.uint8)[None, :] * 3  # a smooth ramp
    kw = {"scale": (0.6, 1.8), "rotation": 25.0, "hflip": True, "vflip": True}
    ranges = AffineRanges(crop_size=(40, 56), **kw)
    agree = []
    for seed in range(5):
        torch.manual_seed(seed)
        cpu = RandomAffineCrop(ranges, mean=info.mean, pad_value=9)(
            {"image": tv_tensors.Image(images[0]), "mask": tv_tensors.Mask(masks[0])})
        aug = DeviceAugment(info, crop_size=(40, 56), seed=seed, kernels="torch", **kw)
        x, m = aug(images, masks)
        agree.append((cpu["mask"] == m[0]).float().mean().item())
        ramp_cpu = cpu["image"][2].float() / 255
        ramp_dev = _unit(x[0, 2])
        inside = (cpu["mask"] != 9) & (m[0] != 9)
        assert (ramp_cpu - ramp_dev)[inside].abs().mean() < 0.02
    assert min(agree) > 0.97


def test_hsv_hue_shift_matches_torchvision_per_image():
    torch.manual_seed(0)
    rgb = torch.rand(3, 3, 8, 9)
    shifts = torch.tensor([0.1, -0.3, 0.0])
    out = hsv_hue_shift(rgb, shifts)
    for k in range(3):
        ref = TF.adjust_hue(rgb[k], float(shifts[k]))
        assert torch.allclose(out[k], ref, atol=1e-5)


@pytest.mark.parametrize("kernels", ["torch", "opencv"])
def test_colour_jitter_on_the_device_keeps_range_and_greys(kernels):
    """Saturation and hue leave greys grey; the output stays a normalised [0, 1] image."""
    aug = DeviceAugment(_info(), crop_size=(16, 16), scale=(1, 1), hflip=False,
                        color_jitter=0.5, seed=3, kernels=kernels)
    grey = torch.full((4, 3, 16, 16), 100, dtype=torch.uint8)
    x, _ = aug(grey, torch.zeros(4, 16, 16, dtype=torch.int64))
    unit = _unit(x)
    assert unit.min() >= -1e-6 and unit.max() <= 1 + 1e-6
    tol = 1e-5 if kernels == "torch" else 1.01 / 255  # 8 bits: a channel may round apart
    assert torch.allclose(unit[:, 0], unit[:, 1], atol=tol)
    assert torch.allclose(unit[:, 1], unit[:, 2], atol=tol)


def test_resident_batches_and_the_loader_path_give_augmented_batches(tmp_path):
    root = write_synthetic_dataset(tmp_path / "s", num_images=6, size=(40, 48))
    index = discover_dataset(root)
    ds = SegmentationDataset(index.train, index.info, transform=ItemSize(), normalize=False)
    item = ds[0]
    assert item["image"].dtype == torch.uint8 and item["size"] == (40, 48)
    resident = ResidentBatches(ds, batch_size=2, device="cpu", seed=1)
    assert len(resident) == len(ds) // 2 and resident.nbytes == len(ds) * 40 * 48 * 4

    def ids(epoch):
        resident.set_epoch(epoch, seed=1)
        return [b["id"] for b in resident]

    assert ids(1) == ids(1)
    assert sorted(i for batch in ids(1) for i in batch) == sorted(s.id for s in index.train)
    aug = DeviceAugment(index.info, crop_size=32, rotation=10, color_jitter=0.2)
    batch = aug.batch(next(iter(resident)), "cpu")
    assert batch["image"].shape == (2, 3, 32, 32) and batch["mask"].shape == (2, 32, 32)
    assert "size" not in batch
    with pytest.raises(MemoryError, match="half the free memory"):
        ResidentBatches(ds, batch_size=2, device="cpu", max_bytes=1000)


def test_torch_and_opencv_kernels_agree_for_the_same_draws():
    images, masks = _marker_batch(n=3, h=48, w=64)
    images[:, 2] = torch.arange(64, dtype=torch.uint8)[None, None, :] * 3
    kw = {"crop_size": (40, 56), "scale": (0.6, 1.8), "rotation": 25.0, "vflip": True,
          "color_jitter": 0.2, "seed": 4}
    x_t, m_t = DeviceAugment(_info(), kernels="torch", **kw)(images, masks)
    x_o, m_o = DeviceAugment(_info(), kernels="opencv", **kw)(images, masks)
    assert (m_t == m_o).float().mean() > 0.97
    same = m_t == m_o
    # colour: 8-bit rounding, OpenCV's 2-degree hue steps and bilinear differences
    assert (_unit(x_t) - _unit(x_o)).abs()[:, :, same[0]].mean() < 0.03
    with pytest.raises(ValueError, match="uint8 images on the CPU"):
        DeviceAugment(_info(), kernels="opencv", **kw)(images.float() / 255, masks)
