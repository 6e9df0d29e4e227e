"""Post-processing on hand-built label maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segwise.inference import fill_holes, keep_largest_component, remove_small_objects


def _grid(text: str) -> np.ndarray:
    return np.array([[int(c) for c in row.strip()] for row in text.strip().splitlines()])


def test_remove_small_objects_by_size_and_connectivity():
    labels = _grid("""
        11000
        11002
        00020
        30000
    """)
    # eight-connectivity: the two diagonal 2s form one object of size 2
    out = remove_small_objects(labels, min_size=2)
    assert np.array_equal(
        out,
        _grid("""
        11000
        11002
        00020
        00000
    """),
    )
    # four-connectivity: each 2 is alone, size 1
    out = remove_small_objects(labels, min_size=2, connectivity="four")
    assert np.array_equal(
        out,
        _grid("""
        11000
        11000
        00000
        00000
    """),
    )
    out = remove_small_objects(labels, min_size=5, classes=[1])
    assert np.array_equal(
        out,
        _grid("""
        00000
        00002
        00020
        30000
    """),
    )
    assert labels[0, 0] == 1  # the input is untouched


def test_fill_holes_fills_only_enclosed_background():
    labels = _grid("""
        111110
        100010
        102010
        111110
        000000
    """)
    out = fill_holes(labels)
    assert np.array_equal(
        out,
        _grid("""
        111110
        111110
        112110
        111110
        000000
    """),
    )
    # the hole has 4 pixels; a maximum of 3 leaves it open
    assert np.array_equal(fill_holes(labels, max_hole_size=3), labels)
    # a region touching the border is not a hole
    open_ring = _grid("""
        1111
        1001
        1000
    """)
    assert np.array_equal(fill_holes(open_ring), open_ring)


def test_keep_largest_component_per_class():
    labels = _grid("""
        1100022
        1100002
        0000000
        1002000
    """)
    out = keep_largest_component(labels)
    assert np.array_equal(
        out,
        _grid("""
        1100022
        1100002
        0000000
        0000000
    """),
    )
    # with four-connectivity the 2s at (0,5),(0,6),(1,6) are still one component; the lone 2 goes
    assert np.array_equal(keep_largest_component(labels, connectivity="four"), out)
    assert np.array_equal(
        keep_largest_component(labels, classes=[2]),
        _grid("""
        1100022
        1100002
        0000000
        1000000
    """),
    )


def test_batches_and_torch_tensors_keep_their_type():
    batch = torch.tensor([[[1, 0, 1], [0, 0, 0], [1, 1, 0]]] * 2)
    out = keep_largest_component(batch, connectivity="four")
    assert isinstance(out, torch.Tensor) and out.dtype == batch.dtype and out.shape == (2, 3, 3)
    assert torch.equal(out[0], torch.tensor([[0, 0, 0], [0, 0, 0], [1, 1, 0]]))  # size 2 wins
    assert torch.equal(out[0], out[1])


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="integer"):
        fill_holes(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="min_size"):
        remove_small_objects(np.zeros((2, 3), dtype=np.int64), min_size=0)
    with pytest.raises(ValueError, match="connectivity='six'"):
        keep_largest_component(np.zeros((2, 3), dtype=np.int64), connectivity="six")
