"""Dice and HD95 on 3D volumes with anisotropic spacing, by hand (issue 26): the metrics are
N-dimensional, distances in physical units (voxel offset times spacing per axis)."""

from __future__ import annotations

import math

import pytest
import torch

from segwise.metrics import dice_score, hausdorff_distance, normalized_surface_dice

SPACING = (2.0, 1.0, 0.5)  # (D, H, W) mm: thick slices, fine columns


def _volumes():
    """(1, 19, 23, 29) target and prediction; class 1 one voxel each, class 2 a 2-slice box."""
    target = torch.zeros(1, 19, 23, 29, dtype=torch.int64)
    pred = torch.zeros_like(target)
    target[0, 1, 1, 1] = 1
    pred[0, 1, 4, 9] = 1  # offset (0, 3, 8) voxels = (0, 3, 4) mm: 5 mm away
    target[0, 10:12, 5:8, 5:9] = 2  # slices 10-11, 3 x 4 voxels each
    pred[0, 11:13, 5:8, 5:9] = 2  # one slice deeper (2 mm)
    return pred, target


def test_dice_per_class_in_3d():
    pred, target = _volumes()
    # class 1: disjoint voxels -> 0; class 2: 12 shared voxels of 24 + 24 -> 2 * 12 / 48
    assert float(dice_score(pred == 1, target == 1)) == 0.0
    assert float(dice_score(pred == 2, target == 2)) == 0.5


def test_hd95_with_anisotropic_spacing_by_hand():
    pred, target = _volumes()
    hd95 = hausdorff_distance(pred, target, num_classes=3, spacing=SPACING)
    # class 1: one boundary voxel each, sqrt((0*2)^2 + (3*1)^2 + (8*0.5)^2) = 5
    assert hd95[0, 1].item() == pytest.approx(5.0, abs=1e-12)
    # class 2: a 2-slice box has every voxel on its boundary; pred slice 11 lies on the
    # target (0), slice 12 is one slice (2 mm) from it: 12 zeros and 12 twos per direction
    assert hd95[0, 2].item() == pytest.approx(2.0, abs=1e-12)
    # median of 12 zeros and 12 twos (linear interpolation between the 12th and 13th): 1
    hd50 = hausdorff_distance(pred, target, num_classes=3, spacing=SPACING, percentile=50)
    assert hd50[0, 2].item() == pytest.approx(1.0, abs=1e-12)
    # isotropic 1 mm: the same voxels are sqrt(3^2 + 8^2) and 1 apart
    iso = hausdorff_distance(pred, target, num_classes=3, spacing=None)
    assert iso[0, 1].item() == pytest.approx(math.sqrt(73), abs=1e-12)
    assert iso[0, 2].item() == pytest.approx(1.0, abs=1e-12)


def test_nsd_tolerance_in_millimetres():
    pred, target = _volumes()
    at_2mm = normalized_surface_dice(pred, target, num_classes=3, spacing=SPACING, tolerance=2.0)
    at_1mm = normalized_surface_dice(pred, target, num_classes=3, spacing=SPACING, tolerance=1.0)
    assert at_2mm[0, 2].item() == 1.0  # every distance (0 or 2 mm) within 2 mm
    assert at_1mm[0, 2].item() == 0.5  # (12 + 12) of (24 + 24) boundary voxels at 0 mm
    assert at_1mm[0, 1].item() == 0.0  # 5 mm apart


def test_spacing_must_have_one_value_per_axis():
    pred, target = _volumes()
    with pytest.raises(ValueError, match=r"spacing=\(2\.0, 1\.0\) is not valid; expected 3"):
        hausdorff_distance(pred, target, num_classes=3, spacing=(2.0, 1.0))
