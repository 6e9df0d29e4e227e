"""Mask overlays as numpy arrays (pure functions) and a grid writer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["default_palette", "denormalize", "error_map", "overlay", "save_overlay_grid"]

# 20 well-separated colours (class 0, background, is black); extended by a seeded generator.
_BASE = [
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
]


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """``num_classes`` RGB colours; class 0 is black, the rest are distinct and stable."""
    colours = list(_BASE[:num_classes])
    rng = np.random.default_rng(0)
    while len(colours) < num_classes:
        colours.append(tuple(int(v) for v in rng.integers(40, 256, size=3)))
    return colours


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


def overlay(
    rgb: np.ndarray,
    labels: np.ndarray,
    palette: Sequence[tuple[int, int, int]],
    *,
    alpha: float = 0.5,
    ignore_index: int | None = None,
) -> np.ndarray:
    """Blend class colours over an image; background (0) and ``ignore_index`` stay unblended.

    Args:
        rgb: ``(H, W, 3)`` uint8 image.
        labels: ``(H, W)`` integer class map.
        palette: one RGB colour per class.
        alpha: opacity of the colours.
        ignore_index: label drawn as the plain image.
    """
    lut = np.asarray(palette, dtype=np.float32)
    safe = np.clip(labels, 0, len(lut) - 1)
    colours = lut[safe]
    blend = (labels > 0) & (labels < len(lut))
    if ignore_index is not None:
        blend &= labels != ignore_index
    out = rgb.astype(np.float32)
    out[blend] = (1 - alpha) * out[blend] + alpha * colours[blend]
    return out.astype(np.uint8)


def error_map(pred: np.ndarray, target: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8: correct foreground green, false positive red, missed blue, ignore grey.

    For multi-class maps a wrong foreground label counts as a false positive (red).
    """
    out = np.zeros((*pred.shape, 3), dtype=np.uint8)
    valid = np.ones(pred.shape, bool) if ignore_index is None else target != ignore_index
    out[valid & (pred == target) & (target > 0)] = (40, 200, 40)
    out[valid & (pred != target) & (pred > 0)] = (220, 40, 40)
    out[valid & (pred == 0) & (target > 0)] = (40, 80, 230)
    out[~valid] = (110, 110, 110)
    return out


def save_overlay_grid(
    path: str | Path,
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    palette: Sequence[tuple[int, int, int]],
    *,
    ignore_index: int | None = None,
) -> Path:
    """Write a PNG grid: one row per image with image, ground truth, prediction and errors.

    Args:
        path: output PNG.
        rows: ``(name, rgb (H,W,3) uint8, target (H,W), pred (H,W))`` per image.
        palette: class colours.
        ignore_index: label shown as grey in the error column.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(rows))
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    titles = ("image", "ground truth", "prediction", "errors (FP red, FN blue)")
    for r, (name, rgb, target, pred) in enumerate(rows):
        panels = (
            rgb,
            overlay(rgb, target, palette, ignore_index=ignore_index, alpha=0.6),
            overlay(rgb, pred, palette, alpha=0.6),
            error_map(pred, target, ignore_index),
        )
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
        axes[r][0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
