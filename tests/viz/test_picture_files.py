"""Pictures written by segwise.viz: the files exist, have the documented sizes, and ignored
pixels are drawn in the ignore colour (issue 10's picture tests)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segwise.labels import LabelSpace
from segwise.viz import (
    overlay,
    plot_confusion,
    plot_curves,
    plot_distribution,
    save_overlay_grid,
)
from segwise.viz.overlays import ERROR_COLOURS
from segwise.viz.report import write_html_report

IGNORE = 255
MAGENTA = (255, 0, 255)


def _read(path):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _near(picture, colour, tol=6):
    return int(np.all(np.abs(picture.astype(int) - np.asarray(colour)) <= tol, axis=-1).sum())


def test_overlay_draws_ignored_pixels_in_the_ignore_colour():
    rgb = np.full((4, 4, 3), 100, np.uint8)
    labels = np.array([[0, 1, IGNORE, 3]] * 4)  # 3: the pad label of 3 classes, no colour
    colours = [(0, 0, 0), (0, 255, 0), (0, 0, 255)]
    plain = overlay(rgb, labels, colours, alpha=0.5, ignore_index=IGNORE)
    assert tuple(plain[0, 2]) == (100, 100, 100)  # no ignore colour: the image
    assert tuple(plain[0, 3]) == (100, 100, 100)  # a label beyond the palette: the image
    assert tuple(plain[0, 1]) == (50, 177, 50)  # 0.5 * 100 + 0.5 * (0, 255, 0)
    shaded = overlay(rgb, labels, colours, alpha=0.5, ignore_index=IGNORE, ignore_color=MAGENTA)
    assert tuple(shaded[0, 2]) == (177, 50, 177)  # 0.5 * 100 + 0.5 * (255, 0, 255)
    assert np.array_equal(np.delete(shaded, 2, axis=1), np.delete(plain, 2, axis=1))
    # without an ignore label the colour has nothing to mark
    assert np.array_equal(overlay(rgb, labels, colours, alpha=0.5, ignore_color=MAGENTA),
                          overlay(rgb, labels, colours, alpha=0.5))


def _labels(ignore_index, ignore_color=None):
    return LabelSpace(task="binary", names=("bg", "cell"), colors=((0, 0, 0), (200, 30, 30)),
                      ignore_index=ignore_index, ignore_color=ignore_color)


def _rows(n):
    rgb = np.full((32, 32, 3), 10, np.uint8)
    target = np.zeros((32, 32), np.int64)
    target[4:28, 4:14] = 1
    target[:, 16:] = IGNORE  # the right half is ignored
    pred = np.zeros((32, 32), np.int64)
    pred[6:26, 4:12] = 1
    pred[8:20, 20:30] = 1  # a prediction inside the ignored half: no error colour
    return [(f"img{i}", rgb, target, pred) for i in range(n)]


@pytest.mark.parametrize(("n", "height"), [(1, 280), (3, 696)])
def test_overlay_grid_file_and_size(tmp_path, n, height):
    # figsize (10, 2.6 n + 0.9) inches at 80 dpi
    path = save_overlay_grid(tmp_path / "grid.png", _rows(n), labels=_labels(IGNORE))
    assert path == tmp_path / "grid.png"
    assert _read(path).shape == (height, 800, 3)


def test_overlay_grid_uses_the_ignore_colours(tmp_path):
    ignored = _read(save_overlay_grid(tmp_path / "a.png", _rows(1),
                                      labels=_labels(IGNORE, ignore_color=MAGENTA)))
    plain = _read(save_overlay_grid(tmp_path / "b.png", _rows(1), labels=_labels(IGNORE)))
    # no ignore label: 255 is neither a class nor the pad label (2), so it counts as missed
    unaware = _read(save_overlay_grid(tmp_path / "c.png", _rows(1), labels=_labels(None)))
    grey = ERROR_COLOURS["ignored"]
    blue = ERROR_COLOURS["missed (false negative)"]
    # error column: the ignored half is grey (plus the legend patch), not "missed" blue
    assert _near(ignored, grey) > 10000 and _near(plain, grey) > 10000
    assert _near(unaware, grey) < 300  # only the legend patch
    assert _near(unaware, blue) > _near(plain, blue) + 10000
    # ground-truth column: the ignored half in the ignore colour, blended 0.35 over grey 10
    shade = tuple(round(0.65 * 10 + 0.35 * v) for v in MAGENTA)  # (96, 6, 96)
    assert _near(ignored, shade) > 1000
    assert _near(plain, shade) == 0 and _near(unaware, shade) == 0


def test_confusion_distribution_and_curves_files_and_sizes(tmp_path):
    m = np.array([[5, 1, 0], [0, 4, 2], [1, 0, 7]])
    # 3 classes: max(4, 0.5 * 3 + 2) = 4 inches at 90 dpi; 30 classes: 17 inches
    assert _read(plot_confusion(m, ["a", "b", "c"], tmp_path / "c3.png")).shape == (360, 360, 3)
    big = plot_confusion(np.eye(30, dtype=np.int64), [f"c{i}" for i in range(30)],
                         tmp_path / "c30.png")
    assert _read(big).shape == (1530, 1530, 3)
    # 6 x 3 inches at 90 dpi; NaN scores are left out, not drawn or raised
    dist = plot_distribution([0.1, 0.5, float("nan"), 0.9], tmp_path / "d.png", xlabel="Dice")
    assert _read(dist).shape == (270, 540, 3)
    history = [{"epoch": e, "train_loss": 1.0 / e, "lr": 1e-3, "val_mean_dice": 0.2 * e}
               for e in (1, 2, 3)]
    curves = plot_curves(history, tmp_path / "curves.png", monitor="mean_dice")
    h, w, _ = _read(curves).shape
    assert w > h > 0  # two panels side by side


def test_html_report_embeds_the_pictures_it_finds(tmp_path):
    picture = plot_distribution([0.5], tmp_path / "d.png", xlabel="Dice")
    report = write_html_report(
        tmp_path / "report.html", title="eval <run>", summary={"mean_dice": 0.81234},
        pictures=[("Per-image Dice", picture), ("Worst images", None),
                  ("Missing", tmp_path / "none.png")])
    text = report.read_text()
    assert text.count("data:image/png;base64,") == 1  # missing pictures are left out
    assert "<h2>Missing</h2>" not in text and "eval &lt;run&gt;" in text and "0.8123" in text
