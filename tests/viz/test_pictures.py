"""Pictures: visible colours, outlines, labels, legends, titles, axes (checked by pixels)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from segwise.labels import LabelSpace
from segwise.viz import error_map, overlay, plot_curves, save_overlay_grid
from segwise.viz.overlays import ERROR_COLOURS, boundaries, display_colour, short_name


def test_dark_class_colours_are_brightened_for_display():
    assert display_colour((128, 0, 0)) == (255, 0, 0)
    assert display_colour((0, 64, 32)) == (0, 255, 128)
    assert display_colour((0, 0, 0)) == (0, 0, 0)
    assert display_colour((230, 25, 75)) == (230, 25, 75)  # already bright: unchanged


def test_class_colour_is_visible_on_a_dark_image():
    rgb = np.zeros((6, 6, 3), np.uint8)  # a dark fluorescence background
    labels = np.zeros((6, 6), np.int64)
    labels[1:5, 1:5] = 1
    out = overlay(rgb, labels, [(0, 0, 0), (128, 0, 0)], alpha=0.5)
    assert tuple(out[2, 2]) == (127, 0, 0)  # 0.5 * 255 (was 0.5 * 128 = 64)
    assert tuple(out[0, 0]) == (0, 0, 0)


def test_outline_draws_the_region_border_at_full_strength():
    rgb = np.zeros((6, 6, 3), np.uint8)
    labels = np.zeros((6, 6), np.int64)
    labels[1:5, 1:5] = 1
    out = overlay(rgb, labels, [(0, 0, 0), (0, 200, 0)], alpha=0.0, outline=True)
    edge = boundaries(labels) & (labels > 0)
    assert edge.sum() == 12  # the 4x4 square's ring
    assert (out[edge] == (0, 200, 0)).all()
    assert (out[~edge] == 0).all()  # alpha 0: no fill inside


def test_error_map_colours_match_the_legend():
    pred = np.array([[1, 1, 0, 0]])
    target = np.array([[1, 0, 1, 255]])
    out = error_map(pred, target, ignore_index=255)
    assert tuple(out[0, 0]) == ERROR_COLOURS["correct foreground"]
    assert tuple(out[0, 1]) == ERROR_COLOURS["false positive / wrong class"]
    assert tuple(out[0, 2]) == ERROR_COLOURS["missed (false negative)"]
    assert tuple(out[0, 3]) == ERROR_COLOURS["ignored"]


def test_short_name():
    name = "0a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9"
    assert short_name(name) == "0a7d30b2...f432ee4e9"[:8] + "..." + name[-7:]
    assert len(short_name(name)) == 18
    assert short_name("synth_0001") == "synth_0001"


def _grid(path, title=None):
    rgb = np.full((32, 32, 3), 10, np.uint8)
    target = np.zeros((32, 32), np.int64)
    target[8:24, 8:24] = 1
    pred = np.zeros((32, 32), np.int64)
    pred[10:26, 10:26] = 1
    labels = LabelSpace(task="binary", names=("background", "nucleus"),
                        colors=((0, 0, 0), (128, 0, 0)))
    return save_overlay_grid(path, [("a" * 64, rgb, target, pred)] * 2, labels=labels,
                             title=title)


def test_overlay_grid_has_title_legend_and_visible_class_colour(tmp_path):
    plain = np.asarray(Image.open(_grid(tmp_path / "a.png")).convert("RGB"))
    titled = np.asarray(Image.open(_grid(tmp_path / "b.png", "best.pt: epoch 7")).convert("RGB"))
    assert plain.shape == titled.shape and plain.shape[1] == 800
    assert not np.array_equal(plain, titled)  # the title is drawn
    # the class colour (128, 0, 0) is drawn as pure red (255, 0, 0) outlines and legend patch
    red = (titled[..., 0] > 240) & (titled[..., 1] < 15) & (titled[..., 2] < 15)
    assert red.sum() > 100
    # the legend under the panels holds the error colours (green patch)
    bottom = titled[-60:]
    green = np.all(np.abs(bottom.astype(int) - ERROR_COLOURS["correct foreground"]) < 8, axis=-1)
    assert green.sum() > 20


def test_curves_one_validation_point_and_best_marker_without_warnings(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 1.0, "lr": 1e-3},
        {"epoch": 2, "train_loss": 0.8, "lr": 5e-4, "val_mean_dice": 0.5},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "No artists with labels" legend warning
        plot_curves(history[:1], tmp_path / "first.png", monitor="mean_dice")
        plot_curves(history, tmp_path / "c.png", monitor="mean_dice")
    import matplotlib.pyplot as plt

    from segwise.viz import plots

    captured = {}
    real = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        captured["axes"] = fig.axes
        return real(fig, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt.Figure, "savefig", keep)
        plots.plot_curves(history, tmp_path / "d.png", monitor="mean_dice")
    ax_loss, ax_metric, ax_lr = captured["axes"]
    assert ax_loss.get_xlim() == (0.5, 2.5)  # epochs 1..2, not 3.8..4.2 around one point
    labels = [t.get_text() for t in ax_metric.get_legend().get_texts()]
    assert "best.pt: epoch 2 (0.500)" in labels
    assert ax_lr.get_ylabel() == "learning rate"
