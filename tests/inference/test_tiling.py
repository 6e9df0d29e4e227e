"""Tile grid and importance map: hand-computed values and agreement with MONAI's definitions."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segwise.inferers.options import Blend
from segwise.inferers.tiling import importance_map, pad_amounts, tile_grid, tile_starts


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "expected"),
    [
        (10, 4, 0.5, [0, 2, 4, 6]),  # stride 2, the last tile ends exactly at 10
        (10, 4, 0.25, [0, 3, 6]),  # stride int(4 * 0.75) = 3
        (11, 4, 0.25, [0, 3, 6, 7]),  # 9 would stick out: pulled back to 11 - 4 = 7
        (8, 8, 0.5, [0]),  # a tile covering the axis: one tile
        (5, 2, 0.9, [0, 1, 2, 3]),  # int(2 * 0.1) = 0 -> stride 1
        (9, 4, 0.0, [0, 4, 5]),
    ],
)
def test_tile_starts_hand_values(size, tile, overlap, expected):
    assert tile_starts(size, tile, overlap) == expected


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 300),
    tile=st.integers(1, 300),
    overlap=st.floats(0.0, 0.95),
)
def test_tile_grid_matches_monai(size, tile, overlap):
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval

    top, bottom = pad_amounts(size, tile)
    padded = size + top + bottom
    ours = tile_starts(padded, tile, overlap)
    interval = _get_scan_interval((padded,), (tile,), 1, (overlap,))
    theirs = [s[0].start for s in dense_patch_slices((padded,), (tile,), interval)]
    assert ours == theirs
    # every padded pixel is covered, no tile sticks out
    covered = torch.zeros(padded, dtype=torch.bool)
    for s in ours:
        assert 0 <= s <= padded - tile
        covered[s : s + tile] = True
    assert bool(covered.all())


def test_pad_amounts_and_grid():
    assert pad_amounts(5, 8) == (1, 2)
    assert pad_amounts(9, 8) == (0, 0)
    grid = tile_grid((5, 20), (8, 8), overlap=0.5)
    assert grid.pad == (1, 2, 0, 0)
    assert grid.ys == (0,)
    assert grid.xs == (0, 4, 8, 12)
    assert len(grid) == 4
    assert grid.positions()[:2] == [(0, 0), (0, 4)]


@pytest.mark.parametrize(
    "bad",
    [
        dict(size=4, tile=5, overlap=0.1),
        dict(size=4, tile=2, overlap=1.0),
        dict(size=4, tile=0, overlap=0.1),
    ],
)
def test_tile_starts_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="tile|overlap"):
        tile_starts(**bad)


@pytest.mark.parametrize("size", [(8, 8), (7, 12), (64, 32), (1, 5)])
@pytest.mark.parametrize("sigma_scale", [0.125, 0.5])
def test_gaussian_importance_map_matches_monai(size, sigma_scale):
    from monai.data.utils import compute_importance_map

    ours = importance_map(size, blend=Blend.GAUSSIAN, sigma_scale=sigma_scale)
    theirs = compute_importance_map(size, mode="gaussian", sigma_scale=sigma_scale)
    assert ours.shape == size
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_importance_map_hand_values():
    w = importance_map((3, 3), blend=Blend.GAUSSIAN, sigma_scale=1 / 3)  # sigma = 1
    e = torch.exp(torch.tensor(-0.5))
    torch.testing.assert_close(w[1, 1], torch.tensor(1.0))
    torch.testing.assert_close(w[0, 1], e)
    torch.testing.assert_close(w[0, 0], e * e)
    assert torch.equal(importance_map((2, 3), blend=Blend.CONSTANT), torch.ones(2, 3))
    # a far corner is clamped up to 1e-3, as in MONAI
    assert importance_map((64, 64), sigma_scale=0.125).min().item() == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="sigma_scale"):
        importance_map((4, 4), sigma_scale=0.0)


def test_default_tile_size_is_twice_the_crop_at_least_512():
    from segwise.inferers.tiling import default_tile_size

    assert default_tile_size(None) == 512
    assert default_tile_size(48) == 512 and default_tile_size(384) == 768
    assert default_tile_size((300, 200)) == 600  # the larger side counts
