"""The sliding window on volumes (N, C, D, H, W): exact where one tile covers the volume,
MONAI's result in 3D, streaming ARGMAX equal to the full map, the 3D tile grid by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segwise.inferers import sliding_window_inference
from segwise.inferers.tiling import importance_map, tile_grid
from segwise.models import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def conv3d_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv3d(6, 3, 3, padding=1)
    ).eval()


@pytest.fixture(scope="module")
def monai_swi():
    """MONAI's sliding window (imported once: the import takes seconds)."""
    from monai.inferers import sliding_window_inference

    def run(model, image, tile, batch, **kwargs):
        with torch.no_grad():
            return sliding_window_inference(image, tile, batch, model, **kwargs)

    return run


def test_tile_grid_in_3d_by_hand():
    # D 5 < tile 8: padded 1 before, 2 after, one start; H 23, tile 10, stride 7: 0, 7, 13;
    # W 29, tile 12, overlap 0.5, stride 6: 0, 6, 12, 17 (the last pulled back to 29 - 12)
    grid = tile_grid((5, 23, 29), (8, 10, 12), overlap=0.25)
    assert grid.pad == (1, 2, 0, 0, 0, 0)
    assert grid.starts == ((0,), (0, 7, 13), (0, 9, 17))
    assert len(grid) == 9 and grid.positions()[:2] == [(0, 0, 0), (0, 0, 9)]
    assert tile_grid((5, 23, 29), (8, 10, 12), overlap=0.5).starts[2] == (0, 6, 12, 17)
    with pytest.raises(ValueError, match=r"tile_size=\(8, 8\) does not match"):
        tile_grid((5, 23, 29), (8, 8), overlap=0.25)
    weights = importance_map((8, 10, 12))
    assert weights.shape == (8, 10, 12) and float(weights.min()) > 0
    assert torch.allclose(weights, weights.flip(0).flip(1).flip(2))  # centred


def test_tile_covering_the_volume_equals_a_whole_volume_forward():
    torch.manual_seed(0)
    model = create_model("unet3d", in_channels=2, num_classes=3, base_width=4, depth=2).eval()
    volume = torch.randn(1, 2, 19, 23, 29)
    with torch.no_grad():
        direct = model(volume)
    out = sliding_window_inference(model, volume, tile_size=(19, 23, 29), channels_last=False)
    torch.testing.assert_close(out, direct, rtol=0, atol=0)
    out = sliding_window_inference(model, volume, tile_size=(19, 23, 29))  # channels-last 3D
    torch.testing.assert_close(out, direct, rtol=1e-5, atol=1e-5)
    probs = sliding_window_inference(model, volume, tile_size=(19, 23, 29), activation="softmax")
    torch.testing.assert_close(probs, direct.softmax(1), rtol=1e-5, atol=1e-5)


def test_tile_larger_than_the_volume_pads_and_crops(conv3d_net):
    volume = torch.randn(1, 2, 5, 7, 9)
    out = sliding_window_inference(conv3d_net, volume, tile_size=(8, 8, 12), channels_last=False)
    # by hand: D 5 -> 8 (1 before, 2 after), H 7 -> 8 (0, 1), W 9 -> 12 (1, 2)
    with torch.no_grad():
        expected = conv3d_net(F.pad(volume, (1, 2, 0, 1, 1, 2)))[:, :, 1:6, 0:7, 1:10]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "batch"),
    [
        ((2, 2, 19, 23, 29), (8, 10, 12), 0.25, 3),
        ((1, 2, 5, 23, 29), (8, 16, 16), 0.5, 4),  # depth shorter than the tile: padded
    ],
)
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_agrees_with_monai_in_3d(conv3d_net, monai_swi, shape, tile, overlap, batch, blend):
    torch.manual_seed(1)
    volume = torch.randn(shape)
    theirs = monai_swi(conv3d_net, volume, tile, batch, overlap=overlap, mode=blend)
    ours = sliding_window_inference(
        conv3d_net, volume, tile_size=tile, overlap=overlap, tile_batch_size=batch, blend=blend
    )
    assert ours.shape == (shape[0], 3, *shape[2:])
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_streaming_argmax_equals_the_full_map_in_3d(conv3d_net):
    torch.manual_seed(2)
    volume = torch.randn(1, 2, 21, 15, 17)  # 4 slabs of slices along D
    full = sliding_window_inference(conv3d_net, volume, tile_size=8, overlap=0.25,
                                    activation="softmax")
    streamed = sliding_window_inference(conv3d_net, volume, tile_size=8, overlap=0.25,
                                        activation="softmax", output="argmax")
    assert streamed.labels.shape == (1, 21, 15, 17)
    assert torch.equal(streamed.labels, full.argmax(1))
    torch.testing.assert_close(streamed.scores, full.max(1).values, rtol=1e-6, atol=1e-6)


def test_3d_errors_name_the_value(conv3d_net):
    volume = torch.randn(1, 2, 9, 9, 9)
    with pytest.raises(ValueError, match=r"tile_size=\(8, 8\) is not valid.*3 of them"):
        sliding_window_inference(conv3d_net, volume, tile_size=(8, 8))
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        sliding_window_inference(conv3d_net, volume[0, 0], tile_size=8)
    with pytest.raises(ValueError, match=r"needs \(N, K, 8, 8, 8\) outputs"):
        sliding_window_inference(lambda x: x[..., :4], volume, tile_size=8)
