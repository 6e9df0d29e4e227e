"""U-Net targets: three-class map, distance map, border weight map (hand values, brute force)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from segwise.instance.methods.unet_watershed.targets import (
    ClassBalance,
    border_weight_map,
    distance_target,
    three_class_target,
)

from .conftest import rect_map


def test_three_class_touching_instances():
    inst = rect_map((7, 9), [(1, 1, 1, 5, 3), (2, 1, 4, 5, 4)])
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 2, 2, 2, 2, 2, 2, 2, 0],
            [0, 2, 1, 2, 2, 1, 1, 2, 0],  # columns 3 | 4: border between touching instances
            [0, 2, 1, 2, 2, 1, 1, 2, 0],
            [0, 2, 1, 2, 2, 1, 1, 2, 0],
            [0, 2, 2, 2, 2, 2, 2, 2, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    out = three_class_target(inst)
    assert out.dtype == np.int64
    assert np.array_equal(out, expected)


def test_three_class_image_edge_is_not_boundary_and_width():
    inst = np.ones((5, 5), int)  # one instance filling the image: no boundary at all
    assert (three_class_target(inst) == 1).all()
    inst = rect_map((7, 7), [(1, 0, 0, 7, 7)])
    inst[3, 3] = 0  # a hole: width 2 marks the 5x5 block around it (minus the hole)
    out = three_class_target(inst, width=2)
    assert (out == 2).sum() == 24 and out[3, 3] == 0
    with pytest.raises(ValueError, match="width=0"):
        three_class_target(inst, width=0)


def test_distance_target_hand_values():
    inst = rect_map((7, 7), [(4, 1, 1, 5, 5)])
    out = distance_target(inst)
    # EDT inside a 5x5 block: rings 1, 2, 3 -> divided by the maximum 3
    assert out[3, 3] == 1.0
    assert out[2, 2] == pytest.approx(2 / 3) and out[1, 1] == pytest.approx(1 / 3)
    assert out[0, 0] == 0.0 and out.dtype == np.float32
    # the image edge counts as outside
    edge = distance_target(np.ones((1, 3), int))
    assert edge.tolist() == [[1.0, 1.0, 1.0]]


def test_border_weight_hand_value():
    # 1x5 row: cell 1 at x=0, cell 2 at x=4. For x=1: d1 = 1, d2 = 3; for x=2: d1 = d2 = 2;
    # both give (d1 + d2)^2 = 16. Class balance: 2 fg of 5 px -> 5/(2*2) = 1.25, bg 5/(2*3)
    inst = np.array([[1, 0, 0, 0, 2]])
    w = border_weight_map(inst, w0=10, sigma=5)
    term = 10 * math.exp(-16 / 50)
    assert w[0, 1] == pytest.approx(5 / 6 + term, rel=1e-6)
    assert w[0, 2] == pytest.approx(5 / 6 + term, rel=1e-6)
    assert w[0, 0] == pytest.approx(1.25)  # border term on background only
    w_all = border_weight_map(inst, class_balance="none", background_only=False)
    assert w_all[0, 0] == pytest.approx(1 + 10 * math.exp(-16 / 50), rel=1e-6)  # d1 0, d2 4
    assert border_weight_map(inst, class_balance=ClassBalance.NONE, w0=0).tolist() == [[1.0] * 5]


def _brute_weights(inst, w0, sigma):
    """O(K*H*W) reference: full-image EDT to every instance, two smallest per pixel."""
    ids = [i for i in np.unique(inst) if i]
    fg = inst > 0
    n_fg, n = fg.sum(), fg.size
    present = int(n_fg > 0) + int(n - n_fg > 0)
    wc = np.where(fg, n / (present * max(n_fg, 1)), n / (present * max(n - n_fg, 1)))
    if len(ids) < 2:
        return wc
    d = np.sort(np.stack([ndimage.distance_transform_edt(inst != i) for i in ids]), axis=0)
    term = w0 * np.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2))
    return wc + np.where(fg, 0, term)


def test_border_weight_matches_brute_force_on_many_instances():
    rng = np.random.default_rng(0)
    inst = np.zeros((60, 70), dtype=np.int32)
    for i in range(1, 41):  # 40 random small cells, some touching or overlapping
        y, x = rng.integers(0, 56), rng.integers(0, 66)
        inst[y : y + rng.integers(2, 5), x : x + rng.integers(2, 5)] = i
    ours = border_weight_map(inst, w0=10, sigma=5)
    ref = _brute_weights(inst, 10, 5)
    # truncation at 6 sigma: error below 10 * exp(-18)
    assert np.abs(ours - ref).max() < 1e-5
    assert ours.dtype == np.float32 and ours.shape == inst.shape


def test_border_weight_empty_and_errors():
    assert (border_weight_map(np.zeros((4, 4), int)) == 1).all()
    with pytest.raises(ValueError, match="sigma=0"):
        border_weight_map(np.zeros((4, 4), int), sigma=0)
    with pytest.raises(ValueError, match="class_balance='inverse'"):
        border_weight_map(np.zeros((4, 4), int), class_balance="inverse")
    with pytest.raises(ValueError, match="instance_map has shape"):
        border_weight_map(np.zeros((4, 4), float))


def test_huge_ids_cost_no_memory():
    small = rect_map((9, 9), [(1, 0, 0, 4, 4), (2, 5, 5, 4, 4)])
    huge = np.where(small == 1, 2_000_000_000, np.where(small == 2, 7, 0))
    assert np.array_equal(distance_target(huge), distance_target(small))
    assert np.array_equal(border_weight_map(huge), border_weight_map(small))


def test_cleaned_once_then_crowd_left_out_for_training():
    """The dataset's one cleaning drops emptied instances and recomputes boxes (crowd flags
    follow); training then only leaves the crowd regions out (`without_crowd`)."""
    import torch

    from segwise.data.datasets import clean_instances
    from segwise.instance.methods import without_crowd

    masks = torch.zeros(3, 6, 8, dtype=torch.uint8)
    masks[0, 1:3, 2:5] = 1  # rows 1-2, cols 2-4 -> box (2, 1, 5, 3)
    masks[2, 4:6, 0:1] = 1  # the crowd region
    inst = {"masks": masks, "labels": torch.tensor([1, 2, 1]), "ids": torch.tensor([7, 8, 9]),
            "boxes": torch.zeros(3, 4), "crowd": torch.tensor([False, False, True])}
    kept = clean_instances(inst)  # evaluation: crowd kept with its flag, emptied #8 dropped
    assert kept["ids"].tolist() == [7, 9] and kept["crowd"].tolist() == [False, True]
    assert kept["boxes"].tolist() == [[2, 1, 5, 3], [0, 4, 1, 6]]
    trained = without_crowd(kept)  # training: crowd is no instance
    assert trained["ids"].tolist() == [7] and trained["labels"].tolist() == [1]
    assert trained["boxes"].tolist() == [[2, 1, 5, 3]]
    assert "crowd" not in trained and trained["masks"].shape == (1, 6, 8)
    plain = {k: v for k, v in kept.items() if k != "crowd"}
    assert without_crowd(plain).keys() == plain.keys()  # no crowd flags: unchanged
