"""Training curves and confusion-matrix heatmaps (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_confusion", "plot_curves"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[Mapping[str, float | None]], path: str | Path) -> Path:
    """Loss (left) and validation Dice/IoU (right) per epoch.

    Args:
        history: one mapping per epoch with ``epoch``, ``train_loss`` and optionally
            ``val_mean_dice``, ``val_mean_iou``, ``val_per_image_dice`` (semantic runs) or
            ``val_dsb_score``, ``val_ap50``, ``val_pq`` (instance runs).
        path: output PNG.
    """
    plt = _pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = [h["epoch"] for h in history]
    ax_loss.plot(epochs, [h.get("train_loss") for h in history], marker="o", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for key, label in (
        ("val_mean_dice", "mean Dice"),
        ("val_mean_iou", "mean IoU"),
        ("val_per_image_dice", "per-image Dice"),
        ("val_dsb_score", "DSB score"),
        ("val_ap50", "AP50"),
        ("val_pq", "PQ"),
    ):
        points = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax_metric.plot(xs, ys, marker="o", label=label)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel("validation")
    ax_metric.set_ylim(0, 1)
    ax_metric.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_confusion(
    matrix: np.ndarray, class_names: Sequence[str], path: str | Path, *, normalize: bool = True
) -> Path:
    """Heatmap of a confusion matrix (rows: ground truth, columns: prediction).

    Args:
        matrix: ``(C, C)`` pixel counts.
        class_names: ``C`` names.
        path: output PNG.
        normalize: show each row as fractions of that class's pixels.
    """
    plt = _pyplot()
    m = matrix.astype(np.float64)
    if normalize:
        totals = m.sum(axis=1, keepdims=True)
        m = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    c = len(class_names)
    size = max(4.0, 0.5 * c + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(c), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(c), class_names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if c <= 20:
        for i in range(c):
            for j in range(c):
                text = f"{m[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > 0.5 * (m.max() or 1) else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
