"""Pictures: overlays of masks on images, training curves, confusion-matrix heatmaps.

Everything here writes files (matplotlib's Agg backend); nothing opens a window.
"""

from segwise.viz.overlays import (
    background_label,
    default_palette,
    denormalize,
    error_map,
    overlay,
    save_overlay_grid,
    save_panel_grid,
    volume_slice,
)
from segwise.viz.plots import plot_confusion, plot_curves, plot_distribution

__all__ = [
    "background_label",
    "default_palette",
    "denormalize",
    "error_map",
    "overlay",
    "plot_confusion",
    "plot_curves",
    "plot_distribution",
    "save_overlay_grid",
    "save_panel_grid",
    "volume_slice",
]
