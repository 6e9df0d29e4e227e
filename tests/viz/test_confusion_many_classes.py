"""The confusion picture of data with hundreds of classes stays a readable size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segwise.viz.plots import MAX_NAMED_CLASSES, plot_confusion


def test_300_classes_draw_a_bounded_picture(tmp_path):
    m = np.eye(300, dtype=np.int64) * 5
    path = plot_confusion(m, [f"c{i}" for i in range(300)], tmp_path / "c.png")
    with Image.open(path) as img:
        w, h = img.size
    cap = (0.5 * MAX_NAMED_CLASSES + 2) * 90  # inches x dpi (was 152 in = 13680 px wide)
    assert w <= cap and h <= cap
