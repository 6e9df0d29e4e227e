"""Tiny hand-built label maps shared by the instance tests."""

from __future__ import annotations

import numpy as np


def rect_map(shape, rects):
    """Paint ``(id, y0, x0, h, w)`` rectangles, in order, onto a zero ``int32`` map."""
    out = np.zeros(shape, dtype=np.int32)
    for ident, y, x, h, w in rects:
        out[y : y + h, x : x + w] = ident
    return out
