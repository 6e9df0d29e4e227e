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


def _min_distance(colours):
    pts = np.asarray(colours, dtype=float)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    return d[~np.eye(len(pts), dtype=bool)].min()


def test_drawn_colours_stay_apart():
    from segwise.data.classes import CAMVID_CLASSES
    from segwise.labels import palette
    from segwise.viz.overlays import MIN_DISPLAY_DISTANCE, display_colour, display_palette

    camvid = CAMVID_CLASSES.colors
    assert _min_distance([display_colour(c) for c in camvid]) == 0  # Tree = Pedestrian before
    for colours in (camvid, palette(21), palette(40)):
        assert _min_distance(display_palette(colours)) >= MIN_DISPLAY_DISTANCE
