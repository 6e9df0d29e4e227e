"""Mask overlays as numpy arrays (pure functions) and a grid writer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segwise.labels import LabelSpace, palette

__all__ = [
    "ERROR_COLOURS",
    "background_label",
    "boundaries",
    "default_palette",
    "denormalize",
    "display_colour",
    "display_palette",
    "error_map",
    "overlay",
    "save_overlay_grid",
    "save_panel_grid",
    "short_name",
]

#: names of a class 0 that is no class to draw (the image shows through it)
BACKGROUND_NAMES = frozenset({"background", "_background_", "bg", "void", "unlabeled",
                              "unlabelled", "none", "class_0"})


def background_label(labels: LabelSpace) -> int | None:
    """The label overlays leave undrawn: 0 when class 0 is background by its name (binary
    data, ``background``, ``class_0`` of inferred classes), else None: a real class 0 (CamVid's
    Sky) is drawn and named in the legend like every other class."""
    names = list(labels.names)
    return 0 if names and names[0].strip().lower() in BACKGROUND_NAMES else None

def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """``num_classes`` RGB colours: :func:`segwise.labels.palette` (the one palette policy;
    class 0 is black, colours are deterministic and distinct)."""
    return list(palette(num_classes))


def denormalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo normalisation for display.

    Args:
        image: ``(C, H, W)`` float, normalised as ``(x - mean) / std`` with x in [0, 1].
        mean: per-channel means; std: per-channel standard deviations.

    Returns:
        ``(H, W, 3)`` uint8: grey channels repeated; only the first 3 of >3 channels shown.
    """
    c = image.shape[0]
    m = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)[:c]
    s = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)[:c]
    x = np.clip(image * s + m, 0.0, 1.0)
    x = np.repeat(x, 3, axis=0) if c == 1 else x[:3]
    if x.shape[0] == 2:
        x = np.concatenate([x, x[:1]], axis=0)
    return (x.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)


def volume_slice(image: np.ndarray, target: np.ndarray, pred: np.ndarray, *,
                 pad_value: int | None = None) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The axial slice of a volume worth drawing: the one with the most labelled voxels.

    Args:
        image: ``(C, D, H, W)`` normalised voxels (any scale: each slice is shown between
            its 1st and 99th percentiles).
        target: ``(D, H, W)`` true labels (0 background, ``pad_value`` left out).
        pred: ``(D, H, W)`` predicted labels.
        pad_value: the label that is no class (not counted as labelled).

    Returns:
        ``(d, rgb (H, W, 3) uint8, target[d], pred[d])``: the slice index along ``D`` (the
        middle one when nothing is labelled) and that slice of each array.
    """
    labelled = (target > 0) & ((target != pad_value) if pad_value is not None else True)
    per_slice = labelled.reshape(labelled.shape[0], -1).sum(axis=1)
    d = int(per_slice.argmax()) if per_slice.any() else target.shape[0] // 2
    grey = np.asarray(image[:3, d], dtype=np.float32)
    lo, hi = np.percentile(grey, [1, 99])
    grey = np.clip((grey - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return d, denormalize(grey, (0.0,) * len(grey), (1.0,) * len(grey)), target[d], pred[d]


def display_colour(colour: Sequence[int]) -> tuple[int, int, int]:
    """A class colour made visible for drawing over an image (not for the mask files).

    Dark colours (brightest channel below 200, e.g. the VOC palette's (128, 0, 0)) are scaled
    up so their brightest channel is 255; black stays black. Over a dark fluorescence image a
    dark colour at any opacity is invisible.
    """
    r, g, b = (int(v) for v in colour[:3])
    top = max(r, g, b)
    if top == 0 or top >= 200:
        return (r, g, b)
    k = 255.0 / top
    return (round(r * k), round(g * k), round(b * k))


#: smallest RGB (Euclidean) distance between two class colours as drawn
MIN_DISPLAY_DISTANCE = 60.0


def display_palette(colours: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    """A palette made visible (:func:`display_colour`) with its colours kept apart.

    Brightening scales a dark colour up to full brightness, so colours on one ray from black
    meet: CamVid's Pedestrian (64, 64, 0) became Tree's (128, 128, 0) -> (255, 255, 0). Each
    colour takes the first of its brightened form, its mix halfway to white and its own value
    that is at least :data:`MIN_DISPLAY_DISTANCE` from the colours before it (else the one
    farthest from them).
    """
    chosen: list[tuple[int, int, int]] = []
    for colour in colours:
        c = tuple(int(v) for v in colour[:3])
        pastel = tuple(round(v + (255 - v) * 0.5) for v in c)
        candidates = [display_colour(c), pastel, c]

        def gap(x):
            return min((float(np.linalg.norm(np.subtract(x, y))) for y in chosen),
                       default=np.inf)

        best = next((x for x in candidates if gap(x) >= MIN_DISPLAY_DISTANCE),
                    max(candidates, key=gap))
        chosen.append(best)
    return chosen


def boundaries(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose right or lower neighbour has another label (inner side).

    Args:
        labels: ``(H, W)`` integer class or instance map.
    """
    edge = np.zeros(labels.shape, dtype=bool)
    dy = labels[1:, :] != labels[:-1, :]
    dx = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return edge


def overlay(
    rgb: np.ndarray,
    labels: np.ndarray,
    palette: Sequence[tuple[int, int, int]],
    *,
    alpha: float = 0.5,
    ignore_index: int | None = None,
    ignore_color: tuple[int, int, int] | None = None,
    outline: bool = False,
    background: int | None = 0,
) -> np.ndarray:
    """Blend class colours over an image; ``background`` and ``ignore_index`` stay unblended.

    Colours pass through :func:`display_palette`, so dark palette entries stay visible and
    apart. Labels
    outside the palette (e.g. the pad label ``num_classes``) are drawn as the image.

    Args:
        rgb: ``(H, W, 3)`` uint8 image.
        labels: ``(H, W)`` integer class map.
        palette: one RGB colour per class.
        alpha: opacity of the fill (0 draws outlines only, with ``outline``).
        ignore_index: label drawn as the plain image (or in ``ignore_color``).
        ignore_color: the colour of ignored pixels
            (:attr:`segwise.labels.LabelSpace.ignore_color`), blended like a class colour
            (as given, not brightened); ``None``: the plain image.
        outline: also draw each region's boundary in its colour at full opacity (the
            foreground side of every class change).
        background: the label drawn as the plain image (default 0), or None to draw every
            class (:func:`background_label` says which for a label space).
    """
    lut = np.asarray(display_palette(palette), dtype=np.float32).reshape(-1, 3)
    safe = np.clip(labels, 0, len(lut) - 1)
    colours = lut[safe]
    blend = (labels >= 0) & (labels < len(lut))
    if background is not None:
        blend &= labels != background
    if ignore_index is not None:
        blend &= labels != ignore_index
    out = rgb.astype(np.float32)
    out[blend] = (1 - alpha) * out[blend] + alpha * colours[blend]
    if ignore_index is not None and ignore_color is not None:
        ignored = labels == ignore_index
        shade = np.asarray(ignore_color[:3], dtype=np.float32)
        out[ignored] = (1 - alpha) * out[ignored] + alpha * shade
    if outline:
        edge = boundaries(labels) & blend
        out[edge] = colours[edge]
    return out.astype(np.uint8)


def error_map(pred: np.ndarray, target: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8: correct foreground green, false positive red, missed blue, ignore grey.

    For multi-class maps a wrong foreground label counts as a false positive (red).
    """
    out = np.zeros((*pred.shape, 3), dtype=np.uint8)
    valid = np.ones(pred.shape, bool) if ignore_index is None else target != ignore_index
    out[valid & (pred == target) & (target > 0)] = ERROR_COLOURS["correct foreground"]
    out[valid & (pred != target) & (pred > 0)] = ERROR_COLOURS["false positive / wrong class"]
    out[valid & (pred == 0) & (target > 0)] = ERROR_COLOURS["missed (false negative)"]
    out[~valid] = ERROR_COLOURS["ignored"]
    return out


#: The error panel's colours, in the legend's words.
ERROR_COLOURS: dict[str, tuple[int, int, int]] = {
    "correct foreground": (40, 200, 40),
    "false positive / wrong class": (220, 40, 40),
    "missed (false negative)": (40, 80, 230),
    "ignored": (110, 110, 110),
}


def short_name(name: str, width: int = 18) -> str:
    """``name`` cut in the middle to ``width`` characters (``0a7d30b2...bd1c3d``)."""
    if len(name) <= width:
        return name
    keep = width - 3
    return f"{name[: (keep + 1) // 2]}...{name[-(keep // 2):]}"


def save_overlay_grid(
    path: str | Path,
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    *,
    labels: LabelSpace,
    title: str | None = None,
) -> Path:
    """Write a PNG grid: one row per image with image, ground truth, prediction and errors.

    Masks are drawn as a light fill plus full-opacity outlines, in visible colours; each row is
    labelled with its (shortened) image name; a legend below names the classes and the error
    colours.

    Args:
        path: output PNG.
        rows: ``(name, rgb (H,W,3) uint8, target (H,W), pred (H,W))`` per image.
        labels: the :class:`~segwise.labels.LabelSpace`: class colours and names (class 0
            is drawn and in the legend unless it is background, :func:`background_label`),
            ``pad_value`` (ignored and padded pixels: grey in
            the error column) and ``ignore_color`` (their colour in the ground-truth column;
            ``None``: the plain image there).
        title: the figure's title (e.g. which checkpoint and epoch it shows).
    """
    colors, left_out = list(labels.colors), labels.pad_value  # ignored and padded: one label
    background = background_label(labels)
    panels = [
        (name, [
            rgb,
            overlay(rgb, target, colors, ignore_index=left_out, ignore_color=labels.ignore_color,
                    alpha=0.35, outline=True, background=background),
            overlay(rgb, pred, colors, alpha=0.35, outline=True, background=background),
            error_map(pred, target, left_out),
        ])
        for name, rgb, target, pred in rows
    ]
    shown = display_palette(colors)
    legend = [(labels.names[c], shown[c])
              for c in range(0 if background is None else 1, labels.num_classes)
              if c != background]
    legend += [(f"error: {k}", v) for k, v in ERROR_COLOURS.items()]
    return save_panel_grid(path, panels, columns=("image", "ground truth", "prediction",
                                                  "errors"), title=title, legend=legend)


def save_panel_grid(
    path: str | Path,
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    *,
    columns: Sequence[str],
    title: str | None = None,
    legend: Sequence[tuple[str, Sequence[int]]] = (),
) -> Path:
    """Write a PNG grid of pictures already drawn: one row per image, one panel per column.

    The grid of :func:`save_overlay_grid` and of ``segwise evaluate``'s instance report (image,
    true instances, predicted instances). Each row is labelled with its (shortened) name in
    its first panel; a legend below names the colours, when given.

    Args:
        path: output PNG.
        rows: ``(name, panels)`` per image; ``panels``: one ``uint8 (H, W, 3)`` picture per
            column.
        columns: the column titles (drawn above the first row).
        title: the figure's title.
        legend: ``(name, RGB 0..255)`` entries.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = max(1, len(rows))
    fig, axes = plt.subplots(n, len(columns), figsize=(2.5 * len(columns), 2.6 * n + 0.9),
                             squeeze=False)
    for r, (name, panels) in enumerate(rows):
        if len(panels) != len(columns):
            raise ValueError(f"row {name!r} has {len(panels)} panels; expected one per column "
                             f"({', '.join(columns)})")
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r][0].text(
            0.02, 0.98, short_name(str(name)), transform=axes[r][0].transAxes, va="top",
            ha="left", fontsize=7, color="white",
            bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.5, "linewidth": 0},
        )
    if legend:
        handles = [Patch(color=np.asarray(rgb[:3]) / 255.0, label=label)
                   for label, rgb in legend]
        fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7,
                   frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.9 / (2.6 * n + 0.9), 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
