"""The fast instance item (objects written inside their boxes; boxes from occupied rows and
columns) equals the dense definitions it replaced, object by object."""

from __future__ import annotations

import numpy as np
import torch

from segwise.data.datasets import clean_instances
from segwise.data.instances import instances_from_label


def test_instances_from_label_equals_the_dense_definition():
    rng = np.random.default_rng(0)
    label = np.zeros((23, 31), np.uint16)
    for obj in (7, 300, 2, 65535, 41):  # non-contiguous ids, 16-bit
        y, x = rng.integers(0, 20, 2)
        label[y:y + rng.integers(1, 6), x:x + rng.integers(1, 9)] = obj
    label[0, 0] = 41  # one object in two pieces
    got = instances_from_label(label, {7: 1, 300: 2, 2: 1, 65535: 3, 41: 2})
    ids = np.unique(label)
    ids = ids[ids > 0]
    dense = (label[None] == ids[:, None, None]).astype(np.uint8)
    assert got["ids"].tolist() == ids.tolist() and np.array_equal(got["masks"], dense)
    for k, m in enumerate(dense):
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        assert got["boxes"][k].tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
    empty = instances_from_label(np.zeros((4, 5), np.uint16), None)
    assert empty["masks"].shape == (0, 4, 5) and empty["boxes"].shape == (0, 4)
    full = instances_from_label(np.full((2, 3), 9, np.uint16), None)  # no background at all
    assert full["ids"].tolist() == [9] and full["boxes"].tolist() == [[0, 0, 3, 2]]


def test_clean_instances_boxes_and_dropped_objects():
    from torchvision.ops import masks_to_boxes

    gen = torch.Generator().manual_seed(0)
    masks = (torch.rand(6, 17, 13, generator=gen) < 0.05).to(torch.uint8)
    masks[2] = 0  # cropped away: dropped with its label, id and crowd flag
    masks[4, 16, 12] = 1  # a pixel in the last row and column
    inst = {"masks": masks, "labels": torch.arange(6), "ids": torch.arange(10, 16),
            "crowd": torch.tensor([0, 1, 1, 0, 0, 1]).bool()}
    out = clean_instances(inst)
    keep = masks.flatten(1).any(1)
    want = masks_to_boxes(masks[keep])
    want[:, 2:] += 1
    assert torch.equal(out["boxes"], want) and torch.equal(out["masks"], masks[keep])
    assert out["ids"].tolist() == [10, 11, 13, 14, 15]
    assert out["crowd"].tolist() == [False, True, False, False, True]
    none = clean_instances({"masks": torch.zeros(0, 4, 4, dtype=torch.uint8),
                              "labels": torch.zeros(0), "ids": torch.zeros(0)})
    assert none["boxes"].shape == (0, 4) and none["masks"].shape == (0, 4, 4)
