"""SOLOv2: grid target assignment, loss values by hand, gradients, shapes, options."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from segwise.instance.methods.base import ObjectStats
from segwise.instance.methods.solov2 import PAPER_SCALE_RANGES, SOLOv2, SOLOv2Options
from segwise.instance.methods.solov2.decode import point_nms
from segwise.instance.methods.solov2.loss import grid_targets_for, solov2_loss_terms
from segwise.instance.methods.solov2.targets import (
    GridTargets,
    assign_grid_targets,
    instance_scales,
)

#: a small network for CPU tests
TINY = {"fpn_channels": 16, "head_channels": 16, "stacked_convs": 1, "mask_channels": 8,
        "kernel_dims": 8}


def _rect(masks, k, y0, y1, x0, x1):
    masks[k, y0:y1, x0:x1] = 1


def test_instance_scales_box_and_centre():
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    _rect(masks, 0, 18, 42, 10, 30)  # 24 x 20 px
    scales, boxes, centres = instance_scales(masks)
    assert boxes.tolist() == [[10, 18, 30, 42], [0, 0, 0, 0]]
    torch.testing.assert_close(scales, torch.tensor([math.sqrt(480), 0.0]))
    torch.testing.assert_close(centres[0], torch.tensor([20.0, 30.0]))  # (cx, cy)


def test_assignment_hand_case():
    # 64 x 64 image; level 0: S = 4 (16 px cells), range (0, 25); level 1: S = 2, range (15, 100)
    masks = torch.zeros(3, 64, 64, dtype=torch.uint8)
    _rect(masks, 0, 28, 32, 18, 22)  # 4 x 4 at centre (20, 30): scale 4, level 0 only
    _rect(masks, 1, 18, 42, 10, 30)  # 24 x 20 at centre (20, 30): scale 21.9, levels 0 and 1
    _rect(masks, 2, 0, 4, 60, 64)  # 4 x 4 at centre (62, 2): scale 4
    grid = assign_grid_targets(masks, torch.tensor([2, 1, 3]), grids=(4, 2),
                               scale_ranges=((0, 25), (15, 100)), center_sampling=0.2)
    # instance 1, level 0: centre region x 20 +- 2 (col 1), y 30 +- 2.4 = 27.6..32.4 (rows 1-2):
    #   cells (1, 1) = 5 and (2, 1) = 9; instance 0 (smaller) wins cell 5 (centre region 0.4 px).
    # instance 2: cell (0, 3) = 3.  level 1 (offset 16): instance 1 only (the others are below
    #   15 px): centre cell (0, 0); y 27.6..32.4 spans rows 0..1 -> cells 16 + 0 and 16 + 2.
    assert grid.positive_cells.tolist() == [3, 5, 9, 16, 18]
    assert grid.positive_instances.tolist() == [2, 0, 1, 1, 1]
    expected = torch.zeros(16 + 4, dtype=torch.long)
    expected[[3, 5, 9, 16, 18]] = torch.tensor([3, 2, 1, 1, 1])
    assert torch.equal(grid.categories, expected)
    # mask targets: 4 x 4 average pooling, soft where a block is partly inside
    assert grid.masks.shape == (3, 16, 16)
    assert grid.masks[0, 7, 4:6].tolist() == [0.5, 0.5]  # x 18..22 covers half of blocks 4, 5
    assert grid.masks[2].sum() == 1.0 and grid.masks[2, 0, 15] == 1.0


def test_assignment_clips_to_three_by_three_and_skips_out_of_range():
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    _rect(masks, 0, 0, 64, 0, 64)  # the whole image, scale 64; epsilon 1 covers every cell
    grid = assign_grid_targets(masks, torch.tensor([1]), grids=(8,), scale_ranges=((0, 100),),
                               center_sampling=1.0)
    # centre (32, 32) -> cell (4, 4); clipped to rows/cols 3..5
    assert grid.positive_cells.tolist() == [r * 8 + c for r in (3, 4, 5) for c in (3, 4, 5)]
    none = assign_grid_targets(masks, torch.tensor([1]), grids=(8,), scale_ranges=((0, 50),))
    assert none.positive_cells.numel() == 0 and none.categories.sum() == 0
    empty = assign_grid_targets(torch.zeros(0, 64, 64, dtype=torch.uint8),
                                torch.zeros(0, dtype=torch.long), grids=(8,),
                                scale_ranges=((0, 50),))
    assert empty.positive_cells.numel() == 0 and empty.masks.shape == (0, 16, 16)


def _one_cell_case():
    """One level of 1 x 2 cells, 2 classes; cell 0 positive (class 1, instance 0)."""
    categories = [torch.zeros(1, 2, 1, 2, requires_grad=True)]  # p = 0.5 everywhere
    kernels = [torch.ones(1, 1, 1, 2, requires_grad=True)]  # E = 1, kernel 1 in both cells
    features = torch.zeros(1, 1, 1, 2, requires_grad=True)  # mask logits 0: p = 0.5
    grid = GridTargets(categories=torch.tensor([1, 0]), positive_cells=torch.tensor([0]),
                       positive_instances=torch.tensor([0]), masks=torch.tensor([[[1.0, 0.0]]]))
    return categories, kernels, features, grid


def test_loss_values_by_hand():
    categories, kernels, features, grid = _one_cell_case()
    opts = SOLOv2Options()
    terms = solov2_loss_terms(categories, kernels, features, [grid], [torch.zeros(2, dtype=bool)],
                              options=opts)
    # focal (alpha 0.25, gamma 2) at p = 0.5: positive 0.25 * 0.5**2 * ln 2, each of the three
    # negatives 0.75 * 0.5**2 * ln 2; normalised by P + 1 = 2
    torch.testing.assert_close(terms["category"], torch.tensor(math.log(2) * 0.625 / 2))
    # Dice with squared sums: 2 * 0.5 / (0.5**2 + 0.5**2 + 1) = 2/3; loss 1/3, times lambda 3
    torch.testing.assert_close(terms["mask"], torch.tensor(1.0))
    # a crowd cell (cell 1) leaves the focal sum: the positive and one negative remain
    terms = solov2_loss_terms(categories, kernels, features, [grid],
                              [torch.tensor([False, True])], options=opts)
    torch.testing.assert_close(terms["category"], torch.tensor(math.log(2) * 0.25 / 2))


def test_loss_without_instances_is_zero_but_connected():
    categories, kernels, features, _ = _one_cell_case()
    grid = GridTargets(categories=torch.zeros(2, dtype=torch.long),
                       positive_cells=torch.zeros(0, dtype=torch.long),
                       positive_instances=torch.zeros(0, dtype=torch.long),
                       masks=torch.zeros(0, 1, 2))
    terms = solov2_loss_terms(categories, kernels, features, [grid], [torch.zeros(2, dtype=bool)],
                              options=SOLOv2Options())
    assert terms["mask"].item() == 0.0
    torch.testing.assert_close(terms["category"], torch.tensor(4 * 0.75 * 0.25 * math.log(2)))
    sum(terms.values()).backward()
    assert kernels[0].grad is not None and features.grad is not None


def test_crowd_cells_are_left_out():
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    _rect(masks, 0, 28, 32, 18, 22)
    _rect(masks, 1, 0, 8, 56, 64)
    opts = SOLOv2Options(grids=(4, 4, 4, 4, 4), scale_ranges=((0, 10),) * 5)
    target = {"masks": masks, "labels": torch.tensor([1, 1]), "crowd": torch.tensor([False, True])}
    grid, crowd = grid_targets_for(target, (64, 64), options=opts)
    assert grid.positive_instances.tolist() == [0] * 5  # one cell per level, crowd not trained
    assert crowd.sum().item() == 5 and bool(crowd[3])  # cell (0, 3) of each level


def test_grid_shapes_follow_the_input_size(tiny_model):
    _, _, model = tiny_model
    assert model.grid_reference == 32
    # ceil(S * side / 32): 64 x 96 doubles / triples every grid
    assert model.grid_shapes(64, 96) == [(80, 120), (72, 108), (48, 72), (32, 48), (24, 36)]
    assert model.grid_shapes(32, 32)[0] == (40, 40)
    out = model.eval()(torch.rand(1, 3, 64, 96))
    assert [tuple(c.shape[-2:]) for c in out.categories] == model.grid_shapes(64, 96)
    assert [tuple(k.shape[-2:]) for k in out.kernels] == model.grid_shapes(64, 96)
    model.grid_reference = None  # the paper: S x S at every size
    try:
        assert model.grid_shapes(64, 96) == [(40, 40), (36, 36), (24, 24), (16, 16), (12, 12)]
    finally:
        model.grid_reference = 32


def test_assignment_on_a_rectangular_grid():
    masks = torch.zeros(1, 32, 64, dtype=torch.uint8)
    _rect(masks, 0, 8, 16, 40, 48)  # 8 x 8 at centre (44, 12)
    grid = assign_grid_targets(masks, torch.tensor([1]), grids=[(2, 4)],
                               scale_ranges=((0, 100),), center_sampling=0.2)
    # rows of 16 px: y 12 -> row 0; columns of 16 px: x 44 -> column 2; cell 0 * 4 + 2
    assert grid.positive_cells.tolist() == [2] and grid.categories.shape == (8,)


def test_point_nms_keeps_local_maxima():
    heat = torch.tensor([[[[0.1, 0.9], [0.8, 0.2]]]])
    kept = point_nms(heat)
    # window of a cell: itself and its left, upper and upper-left neighbours. (0,0) is alone;
    # (0,1) beats (0,0); (1,0) beats (0,0); (1,1) loses to 0.9
    torch.testing.assert_close(kept, torch.tensor([[[[0.1, 0.9], [0.8, 0.0]]]]))


def test_options_validation_and_derived_ranges():
    with pytest.raises(ValueError, match="grids"):
        SOLOv2Options(grids=(40, 36))
    with pytest.raises(ValueError, match="scale_ranges"):
        SOLOv2Options(scale_ranges=((1, 96),))
    with pytest.raises(ValueError, match="nms_kernel"):
        SOLOv2Options(nms_kernel="hard")
    # lists (checkpoint form) are accepted
    opts = SOLOv2Options(grids=[40, 36, 24, 16, 12], scale_ranges=[[0, 10]] * 5)
    assert opts.grids == (40, 36, 24, 16, 12) and opts.scale_ranges == ((0.0, 10.0),) * 5
    method = SOLOv2()
    assert method.resolve_options(SOLOv2Options(), None).scale_ranges == PAPER_SCALE_RANGES
    stats = ObjectStats(sizes=np.array([8.0, 12.0, 300.0]), aspect_ratios=np.ones(3),
                        image_size=(256, 320), objects_per_image=np.array([3]))
    resolved = method.resolve_options(SOLOv2Options(), stats)
    assert resolved.grid_reference == 256  # the crops' short side
    assert method.resolve_options(SOLOv2Options(grid_reference=100), stats).grid_reference == 100
    assert method.resolve_options(SOLOv2Options(), None).grid_reference is None
    ranges = resolved.scale_ranges
    # factor 256 / 800 = 0.32; first range from 0, last stretched to the largest object (300)
    assert ranges == ((0.0, 30.72), (15.36, 61.44), (30.72, 122.88), (61.44, 245.76),
                      (122.88, 655.36))
    kept = method.resolve_options(SOLOv2Options(scale_ranges=[[0, 5]] * 5), stats)
    assert kept.scale_ranges == ((0.0, 5.0),) * 5
    assert "P2 S=40" in method.derived_summary(method.resolve_options(SOLOv2Options(), stats))


@pytest.fixture(scope="module")
def tiny_model():
    method = SOLOv2()
    # grids of 40..12 cells at 32 px: larger inputs get proportionally larger grids
    opts = method.resolve_options(SOLOv2Options(**TINY, grid_reference=32), None)
    torch.manual_seed(0)
    model = method.build(encoder="resnet18", in_channels=3, num_classes=2, options=opts,
                         weights=None)
    return method, opts, model


def test_gradients_reach_every_parameter_on_odd_size(tiny_model):
    method, opts, model = tiny_model
    model.train()
    model.zero_grad()
    masks = torch.zeros(2, 45, 71, dtype=torch.uint8)
    _rect(masks, 0, 3, 20, 5, 30)
    _rect(masks, 1, 25, 44, 40, 70)
    targets = [{"masks": masks, "labels": torch.tensor([1, 2])},
               {"masks": masks[:0], "labels": torch.zeros(0, dtype=torch.long)}]
    terms = method.loss(model, torch.rand(2, 3, 45, 71), targets, options=opts, batch={})
    assert set(terms) == {"category", "mask"} and all(torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    # outside the encoder (whose residual blocks start with a zero last BN, so their inner
    # weights get an exact 0 at the first step) every gradient is non-zero
    zero = [n for n, p in model.named_parameters()
            if not n.startswith("backbone.encoder.") and not p.grad.any()]
    assert not zero


def test_predict_and_export_module_shapes_on_odd_sizes(tiny_model):
    method, opts, model = tiny_model
    model.eval()
    exported = method.export_module(model, options=opts, max_instances=7)
    # predict tiles images larger than grid_reference: 48 px tiles (37 x 48 and 48 x 48 here;
    # 32 px tiles would leave this 8-channel toy GroupNorm one value per group at P6)
    tiled = dataclasses.replace(opts, grid_reference=48)
    for size in ((37, 53), (64, 64)):
        images = torch.rand(2, 3, *size)
        with torch.no_grad():
            preds = method.predict(model, images, options=tiled)
            scores, labels, masks = exported(images)
        assert [p.shape for p in preds] == [size, size]
        assert scores.shape == (2, 7) and labels.shape == (2, 7) and masks.shape == (2, 7, *size)
        assert labels.dtype == torch.int64 and masks.dtype == torch.float32
        # unused rows are zero everywhere; used rows are sorted by score
        assert torch.all((scores > 0) | ((labels == 0) & (masks.flatten(2).sum(-1) == 0)))
        assert torch.all(scores[:, :-1] >= scores[:, 1:])


def test_weights_file_round_trip_and_mismatch(tiny_model, tmp_path):
    method, opts, model = tiny_model
    path = tmp_path / "solov2.pt"
    torch.save(model.state_dict(), path)
    again = method.build(encoder="resnet18", in_channels=3, num_classes=2, options=opts,
                         weights=str(path))
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    torch.save({"head.unknown": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not fit solov2"):
        method.build(encoder="resnet18", in_channels=3, num_classes=2, options=opts,
                     weights=str(tmp_path / "other.pt"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        method.build(encoder="resnet18", in_channels=3, num_classes=2, options=opts,
                     weights=str(tmp_path / "missing.pt"))


def test_decoder_buffers_follow_the_models_device(tiny_model):
    """The per-level min_area is indexed by a tensor on the model's device: a CPU buffer
    under a CUDA model raised in ``candidates`` (found on an H200). ``meta`` stands in for
    a second device here."""
    import copy

    from segwise.instance.methods.solov2.decode import SOLOv2Decoder

    _, opts, model = tiny_model
    decoder = SOLOv2Decoder(copy.deepcopy(model).to("meta"), opts)  # the fixture is shared
    assert {b.device.type for b in decoder.buffers()} == {"meta"}
    assert {p.device.type for p in decoder.parameters()} == {"meta"}
