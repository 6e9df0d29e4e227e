"""SOLOv2 on images larger than its training crops: tiled decoding (issue 12's fault).

Whole-image decoding of a model trained on R x R crops stretched its CoordConv coordinates over
the larger image (AP50 0.009 on DSB 2018, masks off the nuclei). These tests pin the geometry of
the fix: where tiles start, which tile owns which pixel, that every object comes back once at its
own position on a non-square image, and that `SOLOv2.predict` feeds the network only
training-sized inputs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from segwise.instance.methods.solov2 import SOLOv2, SOLOv2Options
from segwise.instance.methods.solov2.options import SOLOv2Prediction
from segwise.instance.methods.solov2.tiling import predict_tiled, tile_cores, tile_starts
from segwise.instance.representation import InstancePrediction

#: a small network for CPU tests
TINY = {"fpn_channels": 16, "head_channels": 16, "stacked_convs": 1, "mask_channels": 8,
        "kernel_dims": 8}


def test_tile_starts_and_cores_by_hand():
    # 300 px, 128 px tiles, 25 % overlap: stride 128 - 32 = 96; 0, 96, then 192 + 128 > 300,
    # so the last tile is moved back to end at the edge: 300 - 128 = 172
    assert tile_starts(300, 128, 0.25) == [0, 96, 172]
    # borders in the middle of each overlap: (0 + 128 + 96) / 2 = 112, (96 + 128 + 172) / 2 = 198
    assert tile_cores([0, 96, 172], 128, 300) == [(0.0, 112.0), (112.0, 198.0), (198.0, 300.0)]
    assert tile_starts(256, 128, 0.25) == [0, 96, 128]  # 96 + 128 < 256: one more at 128
    assert tile_starts(128, 128, 0.25) == [0] and tile_starts(90, 128, 0.25) == [0]
    assert tile_starts(300, 128, 0.0) == [0, 128, 172]
    assert tile_cores([0], 128, 90) == [(0.0, 90.0)]


def _label_map_decoder(calls):
    """A stand-in network: reads the instance label map written into channel 0 of each tile
    (so each tile 'finds' exactly the objects, cut or not, that it shows)."""

    def decode(tiles):
        calls.append(tuple(tiles.shape))
        return [InstancePrediction.from_label_map(t[0].round().long().numpy().astype(np.int32),
                                                  scores=None) for t in tiles]

    return decode


def test_tiles_give_back_every_object_once_at_its_place_on_a_non_square_image():
    h, w = 200, 300  # non-square, larger than the 128 px tile in both sides
    truth = np.zeros((h, w), np.int32)
    truth[10:20, 10:22] = 1  # top-left corner, one tile only
    truth[100:114, 105:119] = 2  # centre (112, 107) in the overlap of x tiles 0 and 1
    truth[180:195, 280:296] = 3  # bottom-right corner, last tiles (moved back to the edge)
    truth[60:70, 186:200] = 4  # x 186..199 straddles the x border 198 of tiles 1 and 2
    image = torch.zeros(3, h, w)
    image[0] = torch.from_numpy(truth).float()
    calls = []
    pred = predict_tiled(_label_map_decoder(calls), image, tile=128, overlap=0.25)
    assert pred.shape == (h, w)
    # tiles: rows (0, 72) x columns (0, 96, 172), all 128 x 128: 6 tiles, one batch (<= 8)
    assert calls == [(6, 3, 128, 128)]
    assert len(pred) == 4  # each object once, although objects 2 and 4 are seen by 2 tiles
    found = {frozenset(zip(*np.nonzero(m), strict=True)) for m in pred.masks()}
    wanted = {frozenset(zip(*np.nonzero(truth == k), strict=True)) for k in range(1, 5)}
    assert found == wanted  # the same pixels: tile offsets are put back exactly


def test_an_object_cut_by_a_tile_is_kept_from_the_tile_that_sees_its_centre():
    h, w = 128, 300
    truth = np.zeros((h, w), np.int32)
    truth[40:60, 100:140] = 1  # 40 px wide: tile 0 (0..127) cuts it at 128, tile 1 (96..223)
    image = torch.zeros(3, h, w)  # sees it whole; centroid x 120 lies in tile 1's core
    image[0] = torch.from_numpy(truth).float()
    pred = predict_tiled(_label_map_decoder([]), image, tile=128, overlap=0.25)
    assert len(pred) == 1 and pred.areas.tolist() == [20 * 40]  # the whole object, not the cut


@pytest.fixture(scope="module")
def tiny():
    method = SOLOv2()
    opts = method.resolve_options(SOLOv2Options(**TINY, grid_reference=32), None)
    torch.manual_seed(0)
    model = method.build(encoder="resnet18", in_channels=3, num_classes=2, options=opts,
                         weights=None).eval()
    return method, opts, model


def test_predict_feeds_the_network_training_sized_tiles(tiny):
    method, opts, model = tiny
    seen = []
    handle = model.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[-2:]))
    try:
        with torch.no_grad():
            preds = method.predict(model, torch.rand(2, 3, 40, 70), options=opts)
            assert [p.shape for p in preds] == [(40, 70), (40, 70)]
            # tiles of grid_reference = 32: the network only ever sees 32 x 32 inputs
            assert seen and {tuple(s) for s in seen} == {(32, 32)}
            seen.clear()
            whole = dataclasses.replace(opts, prediction="whole")
            method.predict(model, torch.rand(1, 3, 40, 70), options=whole)
            assert [tuple(s) for s in seen] == [(64, 96)]  # one pass, padded to 32
            seen.clear()
            larger_tiles = dataclasses.replace(opts, grid_reference=64)  # 40 x 70 > 64: tiles
            method.predict(model, torch.rand(1, 3, 40, 70), options=larger_tiles)
            assert [tuple(s) for s in seen] == [(64, 64)]  # tiles 40 x 64 (x 0, 6), padded
            seen.clear()
            method.predict(model, torch.rand(1, 3, 40, 60), options=larger_tiles)  # not larger
            assert [tuple(s) for s in seen] == [(64, 64)]  # one pass
    finally:
        handle.remove()


def test_prediction_options_are_validated():
    assert SOLOv2Options(prediction="WHOLE").prediction is SOLOv2Prediction.WHOLE
    with pytest.raises(ValueError, match="prediction"):
        SOLOv2Options(prediction="sliding")
    with pytest.raises(ValueError, match="tile_overlap"):
        SOLOv2Options(tile_overlap=0.75)


class _HandMadeOutputs(torch.nn.Module):
    """A stand-in `SOLOv2Model` whose outputs are written by hand (see the test)."""

    divisor = 32

    def __init__(self, categories, kernels, features):
        super().__init__()
        self.outputs = (categories, kernels, features)

    def forward(self, images):
        from segwise.instance.methods.solov2.model import SOLOv2Output

        return SOLOv2Output(*self.outputs)


def test_decoding_puts_a_cell_s_mask_where_its_kernel_points_on_a_non_square_grid():
    from segwise.instance.methods.solov2.decode import SOLOv2Decoder

    # a 64 x 96 input; five levels of non-square grids (2 x 3 four times, then 4 x 6)
    shapes = [(2, 3)] * 4 + [(4, 6)]
    categories = [torch.full((1, 1, *s), -20.0) for s in shapes]
    kernels = [torch.zeros(1, 2, *s) for s in shapes]
    categories[4][0, 0, 3, 5] = 3.0  # probability 0.953 at row 3, column 5 of the last level
    kernels[4][0, :, 3, 5] = torch.tensor([0.0, 1.0])  # its kernel reads feature channel 1
    features = torch.full((1, 2, 16, 24), -50.0)  # 1/4 scale of 64 x 96
    # an 8 x 8 block at 1/4 (above the paper's minimum area of 32 there): rows 16..47, columns
    # 48..79 of the input
    features[0, 1, 4:12, 12:20] = 50.0
    model = _HandMadeOutputs(categories, kernels, features)
    opts = SOLOv2Options(score_threshold=0.3, max_instances=3)
    scores, labels, masks = SOLOv2Decoder(model, opts)(torch.zeros(1, 3, 64, 96))
    # one instance: score = 0.953 x maskness 1; other cells have probability ~0 or empty masks
    assert labels.tolist() == [[1, 0, 0]]
    torch.testing.assert_close(scores[0, 0], torch.sigmoid(torch.tensor(3.0)))
    expected = torch.zeros(64, 96, dtype=torch.bool)
    expected[16:48, 48:80] = True  # 4x bilinear: the 0.5 crossing lies half-way between cells
    # ... except at the 4 corners: pixel (16, 48) samples the 1/4 map at (3.625, 11.625), weight
    # 0.625 * 0.625 = 0.39 on the block, below 0.5
    expected[[16, 16, 47, 47], [48, 79, 48, 79]] = False
    assert torch.equal(masks[0, 0] > 0.5, expected)
