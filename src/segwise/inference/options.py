"""Options of the inference functions, as enums (every function also accepts the string value).

This module imports nothing heavy (no torch, no numpy), so the onnxruntime-only predictor can use
it too.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Activation", "Blend", "Connectivity", "ExportHead", "Flip", "Output", "PadMode"]


class Blend(str, Enum):
    """How overlapping tiles are weighted when they are stitched together.

    - ``GAUSSIAN``: each tile is weighted by a Gaussian centred on the tile (``sigma = sigma_scale
      * tile side``, clamped below at ``max(min, 1e-3)`` exactly as MONAI does), so pixels near a
      tile's border, where the model sees less context, count less.
    - ``CONSTANT``: every tile pixel has weight 1 (a plain average of the overlapping tiles).
    """

    GAUSSIAN = "gaussian"
    CONSTANT = "constant"


class Activation(str, Enum):
    """What is applied to each tile's model output *before* blending.

    - ``NONE``: blend the raw outputs (logits); identical to MONAI's ``sliding_window_inference``.
    - ``SOFTMAX``: softmax over channels (multiclass); the blended map is a probability map.
    - ``SIGMOID``: sigmoid per channel (binary / multilabel).
    """

    NONE = "none"
    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


class Output(str, Enum):
    """What :func:`~segwise.inference.sliding_window_inference` returns.

    - ``FULL``: the blended per-class map ``(N, K, H, W)`` float32.
    - ``ARGMAX``: only the label map and the winning channel's blended value
      (:class:`~segwise.inference.LabelPrediction`); rows are finalised as soon as no later tile
      touches them, so the full ``(K, H, W)`` map is never held.
    """

    FULL = "full"
    ARGMAX = "argmax"


class PadMode(str, Enum):
    """How an image smaller than the tile is padded (``torch.nn.functional.pad`` modes)."""

    CONSTANT = "constant"
    REFLECT = "reflect"
    REPLICATE = "replicate"


class Flip(str, Enum):
    """A flip used by test-time augmentation.

    - ``HORIZONTAL``: mirror left-right (the width axis, last dimension).
    - ``VERTICAL``: mirror top-bottom (the height axis, second-to-last dimension).
    """

    HORIZONTAL = "horizontal"
    VERTICAL = "vertical"


class Connectivity(str, Enum):
    """Which neighbours join two pixels into one connected component.

    - ``FOUR``: edge neighbours only (up, down, left, right).
    - ``EIGHT``: edge and corner neighbours.
    """

    FOUR = "four"
    EIGHT = "eight"


class ExportHead(str, Enum):
    """What an exported model returns (everything after the model is baked into the graph).

    - ``LOGITS``: the raw model output ``(N, K, H, W)`` float32.
    - ``PROBABILITIES``: softmax (multiclass) or sigmoid (binary / multilabel), ``(N, K, H, W)``.
    - ``LABELS``: class indices ``(N, H, W)`` int64 for multiclass (argmax) and binary
      (probability > 0.5); a ``(N, K, H, W)`` int64 0/1 map for multilabel.
    """

    LOGITS = "logits"
    PROBABILITIES = "probabilities"
    LABELS = "labels"
