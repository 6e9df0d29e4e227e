"""Options of the inference functions, as enums (every function also accepts the string value).

This module imports nothing heavy (no torch, no numpy), so the onnxruntime-only predictor can use
it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "TTA_FLIPS",
    "VOLUME_TTA_FLIPS",
    "Activation",
    "Blend",
    "Connectivity",
    "ExportHead",
    "Flip",
    "Output",
    "PadMode",
    "PredictOptions",
    "VolumeOptions",
]


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
    - ``DEPTH``: mirror the depth axis of a volume (third-to-last dimension of ``(N, C, D, H,
      W)``); volumes only.
    """

    HORIZONTAL = "horizontal"
    VERTICAL = "vertical"
    DEPTH = "depth"


class Connectivity(str, Enum):
    """Which neighbours join two pixels into one connected component.

    - ``FOUR``: edge neighbours only (up, down, left, right); in a volume, face neighbours
      only (6).
    - ``EIGHT``: edge and corner neighbours; in a volume, every neighbour (26: faces, edges
      and corners).
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


#: ``PredictOptions.flips`` of ``segwise predict --tta``: identity, horizontal, vertical, both
TTA_FLIPS = (Flip.HORIZONTAL, Flip.VERTICAL)

#: the flips of ``segwise predict --tta`` for volumes: every subset of the three axes (8 passes)
VOLUME_TTA_FLIPS = (Flip.DEPTH, Flip.VERTICAL, Flip.HORIZONTAL)


@dataclass(frozen=True)
class PredictOptions:
    """How a predictor runs a model over one image: tiling and test-time flips, in one value.

    Attributes:
        tile_size: sliding-window tile side (px) for images larger than it in either side;
            ``None``: the checkpoint's default, ``segwise.inferers.tiling.default_tile_size``
            of the training crop.
        overlap: fraction of a tile shared with its neighbour, in ``[0, 1)``.
        flips: test-time augmentation: every subset of these :class:`Flip` values is predicted
            and the probabilities are averaged (``segwise.inference.tta_inference``); ``()``
            runs one pass. :data:`TTA_FLIPS` gives the 4 passes of ``--tta``. Semantic models
            only (flip averaging is not defined for instances).
    """

    tile_size: int | None = None
    overlap: float = 0.25
    flips: tuple[Flip, ...] = ()

    def __post_init__(self) -> None:
        if self.tile_size is not None and (
            isinstance(self.tile_size, bool) or not isinstance(self.tile_size, int)
            or self.tile_size < 1
        ):
            raise ValueError(f"tile_size={self.tile_size!r} is not valid; expected an int >= 1 "
                             "(pixels) or None for the checkpoint's default")
        _check_overlap(self.overlap, example=0.25)
        object.__setattr__(self, "flips", _as_flips(self.flips))


@dataclass(frozen=True)
class VolumeOptions:
    """How a volume predictor runs a 3D model over one volume (what ``segwise predict`` does
    with a run trained on volumes).

    Attributes:
        patch_size: sliding-window patch ``(D, H, W)`` in voxels; ``None``: the run's training
            patch (``data.patch_size``). Smaller volumes are padded to it.
        overlap: fraction of a patch shared with its neighbour, in ``[0, 1)`` (nnU-Net: 0.5).
        flips: test-time augmentation: every subset of these :class:`Flip` values is predicted
            and the class probabilities averaged; ``()`` runs one pass.
            :data:`VOLUME_TTA_FLIPS` gives the 8 passes of ``--tta``.
        tile_batch_size: patches per model call.
        amp_dtype: autocast dtype for the model (``torch.bfloat16``, ``torch.float16``), or
            ``None`` for full precision.
    """

    patch_size: tuple[int, int, int] | None = None
    overlap: float = 0.5
    flips: tuple[Flip, ...] = ()
    tile_batch_size: int = 2
    amp_dtype: object = None

    def __post_init__(self) -> None:
        if self.patch_size is not None:
            sides = tuple(self.patch_size) if isinstance(self.patch_size, (tuple, list)) else ()
            if len(sides) != 3 or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sides):
                raise ValueError(f"patch_size={self.patch_size!r} is not valid; expected three "
                                 "ints >= 1 (D, H, W) or None for the run's training patch")
            object.__setattr__(self, "patch_size", sides)
        _check_overlap(self.overlap, example=0.5)
        if (isinstance(self.tile_batch_size, bool) or not isinstance(self.tile_batch_size, int)
                or self.tile_batch_size < 1):
            raise ValueError(f"tile_batch_size={self.tile_batch_size!r} is not valid; expected "
                             "an int >= 1")
        object.__setattr__(self, "flips", _as_flips(self.flips))


def _check_overlap(overlap: float, *, example: float) -> None:
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap={overlap!r} is not valid; expected a fraction in [0, 1), "
                         f"e.g. {example}")


def _as_flips(value) -> tuple[Flip, ...]:
    """Flips as :class:`Flip` values, once each, in the order given."""
    given = (value,) if isinstance(value, str) else value  # Flip is a str
    flips = []
    for f in given:
        try:
            flips.append(Flip(f))
        except ValueError:
            raise ValueError(f"flips: {f!r} is not a flip; expected any of "
                             f"{[m.value for m in Flip]}") from None
    return tuple(dict.fromkeys(flips))
