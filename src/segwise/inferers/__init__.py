"""Inferers: the pure inference primitives every higher layer shares.

The sliding window (:func:`sliding_window_inference`), its tiling maths, test-time
augmentation, post-processing of label maps, their options (enums) and the one tiled forward
pass (:func:`forward_logits`). This package sits below both training (:mod:`segwise.engine`,
which validates with them) and serving (:mod:`segwise.inference`, the predictor and
exporters), and imports nothing from either (``tests/test_package_order.py``). The 3D and
big-raster readers build on the same primitives.

Importing it is cheap (names resolve lazily, PEP 562); ``segwise.inferers.options`` never
imports torch, so the onnxruntime-only predictor can use the enums.
"""

from __future__ import annotations

from segwise._lazy import lazy_exports

# public name -> module that defines it
_LAZY = {
    "Activation": "segwise.inferers.options",
    "Blend": "segwise.inferers.options",
    "Connectivity": "segwise.inferers.options",
    "ExportHead": "segwise.inferers.options",
    "Flip": "segwise.inferers.options",
    "Output": "segwise.inferers.options",
    "PadMode": "segwise.inferers.options",
    "PredictOptions": "segwise.inferers.options",
    "TTA_FLIPS": "segwise.inferers.options",
    "VOLUME_TTA_FLIPS": "segwise.inferers.options",
    "VolumeOptions": "segwise.inferers.options",
    "forward_logits": "segwise.inferers.forward",
    "LabelPrediction": "segwise.inferers.sliding_window",
    "sliding_window_inference": "segwise.inferers.sliding_window",
    "TileGrid": "segwise.inferers.tiling",
    "default_tile_size": "segwise.inferers.tiling",
    "importance_map": "segwise.inferers.tiling",
    "tile_grid": "segwise.inferers.tiling",
    "tile_starts": "segwise.inferers.tiling",
    "GeometricTransform": "segwise.inferers.tta",
    "tta_inference": "segwise.inferers.tta",
    "tta_transforms": "segwise.inferers.tta",
    "fill_holes": "segwise.inferers.postprocess",
    "keep_largest_component": "segwise.inferers.postprocess",
    "remove_small_objects": "segwise.inferers.postprocess",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
