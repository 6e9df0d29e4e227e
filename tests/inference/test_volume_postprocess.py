"""Post-processing and flips in 3D: components and holes through the volume, not slice by
slice; the depth flip (issue 26)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segwise.inference import (
    Flip,
    fill_holes,
    keep_largest_component,
    remove_small_objects,
    tta_inference,
    tta_transforms,
)


def test_keep_largest_component_removes_a_planted_small_component_in_3d():
    labels = np.zeros((10, 12, 14), dtype=np.int64)
    labels[1:6, 2:8, 3:9] = 1  # the organ: 180 voxels
    labels[8, 10, 12] = 1  # a planted speck of class 1
    labels[2:4, 2:4, 11:13] = 2  # class 2: a component of 8 voxels ...
    labels[7:9, 9:11, 1:2] = 2
    labels[7, 9, 2] = 2  # ... and one of 4 + 1 = 5
    out = keep_largest_component(labels, spatial_dims=3)
    assert out[8, 10, 12] == 0 and (out[1:6, 2:8, 3:9] == 1).all()
    assert (out == 1).sum() == 180
    assert (out[2:4, 2:4, 11:13] == 2).all() and (out == 2).sum() == 8  # 8 beats 5
    assert labels[8, 10, 12] == 1  # the input is not modified


def test_components_connect_through_slices_not_within_them():
    """Two blobs joined only through the next slice: one component in 3D (slice by slice, a
    2D clean-up would drop one of them)."""
    labels = np.zeros((3, 9, 9), dtype=np.int64)
    labels[0, 1:3, 1:3] = 1  # blob A in slice 0
    labels[0, 6:8, 6:8] = 1  # blob B in slice 0
    labels[1, 1:8, 1:8] = 1  # a plate in slice 1 joining them
    assert np.array_equal(keep_largest_component(labels, spatial_dims=3), labels)
    as_slices = keep_largest_component(labels, spatial_dims=2)  # (N, H, W): slice by slice
    assert as_slices[0].sum() == 4 and not np.array_equal(as_slices, labels)


def test_connectivity_in_3d_is_six_or_twenty_six_neighbours():
    labels = np.zeros((4, 4, 4), dtype=np.int64)
    labels[0, 0, 0] = labels[1, 1, 1] = 1  # touching at a corner only
    labels[3, 3, 2:4] = 1  # two face neighbours: the largest with six-connectivity
    assert (keep_largest_component(labels, spatial_dims=3, connectivity="four") == 1).sum() == 2
    assert np.array_equal(remove_small_objects(labels, min_size=2, spatial_dims=3), labels)
    out = remove_small_objects(labels, min_size=2, spatial_dims=3, connectivity="four")
    assert out[0, 0, 0] == 0 and out[1, 1, 1] == 0 and out[3, 3, 2:4].tolist() == [1, 1]


def test_fill_holes_fills_enclosed_cavities_but_not_open_tubes():
    closed = np.zeros((7, 7, 7), dtype=np.int64)
    closed[1:6, 1:6, 1:6] = 1
    closed[3, 3, 3] = 0  # a cavity
    assert fill_holes(closed, spatial_dims=3)[3, 3, 3] == 1
    tube = np.zeros((7, 7, 7), dtype=np.int64)
    tube[:, 1:6, 1:6] = 1
    tube[:, 3, 3] = 0  # a channel open at both ends: no hole in 3D, a hole in every slice
    assert np.array_equal(fill_holes(tube, spatial_dims=3), tube)
    assert (fill_holes(tube, spatial_dims=2)[:, 3, 3] == 1).all()


def test_batches_of_volumes_and_bad_dimensions():
    batch = torch.zeros(2, 3, 4, 5, dtype=torch.int64)
    batch[:, 0, 0, 0] = 1
    batch[:, 2, 2:4, 2:4] = 1
    out = keep_largest_component(batch, spatial_dims=3)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 4, 5)
    assert out[:, 0, 0, 0].tolist() == [0, 0] and int(out.sum()) == 8
    with pytest.raises(ValueError, match=r"\(D, H, W\) or \(N, D, H, W\) label volume"):
        keep_largest_component(np.zeros((2, 3), dtype=np.int64), spatial_dims=3)
    with pytest.raises(ValueError, match="spatial_dims=4 is not valid"):
        keep_largest_component(np.zeros((2, 3, 4, 5), dtype=np.int64), spatial_dims=4)


def test_depth_flip_joins_the_flips_of_volumes_and_is_refused_for_images():
    transforms = tta_transforms((Flip.DEPTH, Flip.VERTICAL, Flip.HORIZONTAL))
    assert len(transforms) == 8
    probe = torch.arange(60.0).reshape(3, 4, 5)
    assert torch.equal(transforms[0].apply(probe), probe)
    assert len({tuple(t.apply(probe).flatten().tolist()) for t in transforms}) == 8
    for t in transforms:
        assert torch.equal(t.invert(t.apply(probe)), probe)

    def depth_ramp(x: torch.Tensor) -> torch.Tensor:  # logits that depend on the depth index
        ramp = torch.arange(x.shape[2], dtype=x.dtype).view(1, 1, -1, 1, 1)
        return torch.cat([x + ramp, x - ramp], dim=1)

    volume = torch.randn(1, 1, 4, 3, 2)
    plain = depth_ramp(volume).softmax(1)
    flipped = depth_ramp(volume.flip(2)).softmax(1).flip(2)
    out = tta_inference(depth_ramp, volume, flips=(Flip.DEPTH,))
    torch.testing.assert_close(out, (plain + flipped) / 2)
    with pytest.raises(ValueError, match="'depth' flips the depth axis of a volume"):
        tta_inference(depth_ramp, torch.randn(1, 1, 4, 4), flips=("depth",))
