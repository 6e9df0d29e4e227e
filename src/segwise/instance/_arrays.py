"""Array helpers of `segwise.instance.representation` (numpy only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["boxes_from_label_map", "paint"]


def boxes_from_label_map(instance_map: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Tight pixel-edge boxes of the given IDs, vectorised over all pixels.

    Args:
        instance_map: ``(H, W)`` integer label map.
        ids: ``(K,)`` IDs present in ``instance_map``.

    Returns:
        ``float32 (K, 4)`` ``x1, y1, x2, y2`` with ``x2 = max column + 1``; all zeros for an ID
        without pixels.
    """
    ids = np.asarray(ids, dtype=np.int64)
    boxes = np.zeros((len(ids), 4), dtype=np.float32)
    if len(ids) == 0:
        return boxes
    ys, xs = np.nonzero(instance_map)
    values = instance_map[ys, xs].astype(np.int64)
    index = np.searchsorted(ids, values)  # ids sorted
    index = np.clip(index, 0, len(ids) - 1)
    keep = ids[index] == values
    index, ys, xs = index[keep], ys[keep], xs[keep]
    big = np.iinfo(np.int64).max
    x1 = np.full(len(ids), big, dtype=np.int64)
    y1 = np.full(len(ids), big, dtype=np.int64)
    x2 = np.full(len(ids), -1, dtype=np.int64)
    y2 = np.full(len(ids), -1, dtype=np.int64)
    np.minimum.at(x1, index, xs)
    np.minimum.at(y1, index, ys)
    np.maximum.at(x2, index, xs)
    np.maximum.at(y2, index, ys)
    present = x2 >= 0
    boxes[present] = np.stack([x1, y1, x2 + 1, y2 + 1], axis=1)[present].astype(np.float32)
    return boxes


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _per_instance(value: Any, ids: np.ndarray, *, default: float, name: str) -> np.ndarray:
    if value is None:
        return np.full(len(ids), default)
    if np.isscalar(value):
        return np.full(len(ids), value)
    if isinstance(value, Mapping):
        missing = [int(i) for i in ids if int(i) not in value]
        if missing:
            raise ValueError(f"{name} has no entry for instance IDs {missing}")
        return np.array([value[int(i)] for i in ids])
    arr = _to_numpy(value)
    if arr.shape != (len(ids),):
        raise ValueError(
            f"{name} has shape {arr.shape}; expected ({len(ids)},), one per instance ID in "
            "sorted order"
        )
    return arr


def _majority_class(inst: np.ndarray, class_map: np.ndarray, ids: np.ndarray) -> np.ndarray:
    if class_map.shape != inst.shape:
        raise ValueError(f"class_map has shape {class_map.shape}; expected {inst.shape}")
    if len(ids) == 0:
        return np.zeros(0, np.int64)
    fg = (inst > 0) & (class_map > 0)
    k = np.searchsorted(ids, inst[fg])
    c = class_map[fg].astype(np.int64)
    ncls = int(c.max(initial=0)) + 1
    table = np.bincount(k * ncls + c, minlength=len(ids) * ncls).reshape(len(ids), ncls)
    table[:, 0] = 0
    lab = table.argmax(axis=1)
    lab[lab == 0] = 1
    return lab.astype(np.int64)


def paint(instance_map: np.ndarray, ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values[k]`` on the pixels of ``ids[k]`` (sorted), 0 elsewhere; ``O(HW log K)``.

    A search instead of a lookup table, so that large IDs (e.g. 10**9) cost no memory.
    """
    values = np.asarray(values)
    out = np.zeros(instance_map.shape, dtype=values.dtype if values.size else np.int64)
    if len(ids) == 0:
        return out
    index = np.clip(np.searchsorted(ids, instance_map), 0, len(ids) - 1)
    hit = ids[index] == instance_map
    out[hit] = values[index[hit]]
    return out
