"""Training curves and confusion-matrix heatmaps (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_confusion", "plot_curves", "plot_distribution"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_METRICS = (
    ("val_mean_dice", "mean Dice"),
    ("val_mean_iou", "mean IoU"),
    ("val_per_image_dice", "per-image Dice"),
    ("val_dsb_score", "DSB score"),
    ("val_ap50", "AP50"),
    ("val_pq", "PQ"),
)


def plot_curves(
    history: Sequence[Mapping[str, float | None]],
    path: str | Path,
    *,
    monitor: str | None = None,
) -> Path:
    """Losses and learning rate (left) and validation scores (right) per epoch.

    The x axis spans the epochs (integer ticks, so one epoch is not drawn as 3.8..4.2); the
    best validation of ``monitor`` is marked with a star and its epoch.

    Args:
        history: one mapping per epoch with ``epoch``, ``train_loss``, ``lr`` and optionally
            ``val_loss``, ``val_mean_dice``, ``val_mean_iou``, ``val_per_image_dice``
            (semantic runs) or ``val_dsb_score``, ``val_ap50``, ``val_pq`` (instance runs).
        path: output PNG.
        monitor: the metric that selects ``best.pt`` (e.g. ``"mean_dice"``), marked at its
            best epoch; None marks nothing.
    """
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = [h["epoch"] for h in history]
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        points = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax_loss.plot(xs, ys, marker="o", label=label)
    ax_loss.set_ylabel("loss")
    ax_loss.ticklabel_format(axis="y", useOffset=False)  # one or two epochs: no "+1.29" offset
    lr_points = [(h["epoch"], h["lr"]) for h in history if h.get("lr") is not None]
    ax_lr = None
    if lr_points:
        ax_lr = ax_loss.twinx()
        xs, ys = zip(*lr_points, strict=True)
        ax_lr.plot(xs, ys, color="grey", linestyle="--", marker="x",  # a point at one epoch
                   label="learning rate (right axis)")
        ax_lr.set_ylabel("learning rate", color="grey")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        ax_lr.set_ylim(bottom=0)
    handles, labels = ax_loss.get_legend_handles_labels()
    if ax_lr is not None:
        more = ax_lr.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if handles:
        ax_loss.legend(handles, labels, fontsize=8)
    for key, label in _METRICS:
        points = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax_metric.plot(xs, ys, marker="o", label=label)
    best = _best_point(history, monitor)
    if best is not None:
        ax_metric.plot([best[0]], [best[1]], marker="*", markersize=16, color="gold",
                       markeredgecolor="black", linestyle="none",
                       label=f"best.pt: epoch {best[0]} ({best[1]:.3f})")
    ax_metric.set_ylabel("validation")
    ax_metric.set_ylim(0, 1)
    if ax_metric.get_legend_handles_labels()[0]:  # none before the first validation
        ax_metric.legend(fontsize=8)
    lo, hi = (min(epochs), max(epochs)) if epochs else (1, 1)
    for ax in (ax_loss, ax_metric):
        ax.set_xlabel("epoch")
        ax.set_xlim(lo - 0.5, hi + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _best_point(history: Sequence[Mapping[str, float | None]], monitor: str | None):
    if monitor is None:
        return None
    key = f"val_{monitor}"
    points = [(h["epoch"], h[key]) for h in history
              if isinstance(h.get(key), int | float) and np.isfinite(h[key])]
    if not points:
        return None
    best = max(v for _, v in points)
    return next(p for p in points if p[1] == best)  # the first epoch reaching it, as best.pt


#: Above this many classes the confusion picture keeps a fixed size and drops the class names.
MAX_NAMED_CLASSES = 40


def plot_confusion(
    matrix: np.ndarray, class_names: Sequence[str], path: str | Path, *, normalize: bool = True
) -> Path:
    """Heatmap of a confusion matrix (rows: ground truth, columns: prediction).

    Above :data:`MAX_NAMED_CLASSES` classes the picture keeps that size and shows no names.

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
    # half an inch per class up to MAX_NAMED_CLASSES; beyond that a fixed size without names
    # (300 classes made a 13680-pixel-wide picture that took over a minute to draw)
    size = max(4.0, 0.5 * min(c, MAX_NAMED_CLASSES) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None,
                   interpolation="nearest")
    if c <= MAX_NAMED_CLASSES:
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


def plot_distribution(values: Sequence[float], path: str | Path, *, xlabel: str) -> Path:
    """Histogram of per-image scores in [0, 1] (20 bins; NaN values are left out).

    Args:
        values: one score per image.
        path: output PNG.
        xlabel: what the score is (e.g. ``"per-image Dice"``).
    """
    plt = _pyplot()
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(finite, bins=20, range=(0.0, 1.0), color="#4c72b0", edgecolor="white")
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_title(f"{len(finite)} images", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
