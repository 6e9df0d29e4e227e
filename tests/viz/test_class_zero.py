"""Pictures that show every class (issue 31, item 2): a real class 0 is drawn and named."""

from __future__ import annotations

import numpy as np

from segwise.labels import LabelSpace
from segwise.viz import background_label, overlay


def test_class_zero_is_background_only_by_its_name():
    assert background_label(LabelSpace(task="binary", names=("background", "foreground"))) == 0
    assert background_label(LabelSpace(task="multiclass", names=("class_0", "class_1"))) == 0
    camvid = LabelSpace(task="multiclass", names=("Sky", "Building", "Road"))
    assert background_label(camvid) is None


def test_overlay_draws_a_real_class_zero():
    rgb = np.full((2, 2, 3), 100, np.uint8)
    labels = np.array([[0, 1], [0, 1]])
    colours = [(0, 0, 255), (255, 0, 0)]
    kept = overlay(rgb, labels, colours, alpha=1.0)  # 0 is background: the image
    assert (kept[0, 0] == 100).all() and (kept[0, 1] != 100).any()
    drawn = overlay(rgb, labels, colours, alpha=1.0, background=None)
    assert (drawn[0, 0] != 100).any()  # class 0 (Sky) in its colour
