"""Options of ``unet_watershed``: the semantic architecture, the training targets and the
decoding (their enums, `Decoding` and `ClassBalance`, live here so that `.targets` and `.decode`
read them without importing each other or the method object)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from segwise._validation import as_enum, check_probability

__all__ = [
    "UNET_IGNORE",
    "UNET_NUM_CLASSES",
    "ClassBalance",
    "Decoding",
    "UNetWatershedOptions",
]


class Decoding(str, Enum):
    """How markers become instances.

    - ``WATERSHED``: ``skimage.segmentation.watershed`` from the markers over the foreground.
    - ``CONNECTED_COMPONENTS``: the markers' connected components (``scipy.ndimage.label``),
      each grown over its foreground component by at most ``grow`` pixels (chessboard
      distance) to the nearest marker pixel.
    """

    WATERSHED = "watershed"
    CONNECTED_COMPONENTS = "connected_components"


class ClassBalance(str, Enum):
    """The ``w_c`` term of `.targets.border_weight_map`.

    - ``NONE``: ``w_c = 1``.
    - ``BALANCED``: ``w_c = N / (C * n_c)`` for foreground/background (``n_c`` pixels of class
      ``c``, ``C`` classes present, ``N`` pixels), so ``w_c`` averages to 1 over the image.
    """

    NONE = "none"
    BALANCED = "balanced"


#: output channels: background, interior, boundary
UNET_NUM_CLASSES = 3
#: target value of pixels the loss leaves out (padding, the data's ignore label)
UNET_IGNORE = 255


@dataclass(frozen=True)
class UNetWatershedOptions:
    """Options of ``unet_watershed`` (``--model-option KEY=VALUE``; stored in checkpoints).

    Attributes:
        arch: the semantic architecture (``segwise models``).
        arch_options: keyword arguments of that architecture, e.g. ``{base_width: 16}``.
        decoding: `Decoding` (``watershed`` or ``connected_components``).
        foreground_threshold: ``1 - p_background`` above which a pixel is foreground.
        interior_threshold: ``p_interior`` above which a pixel seeds a marker.
        min_area: instances with fewer pixels are removed.
        boundary_width: boundary thickness of the training target (px), also the growth
            radius of connected-components decoding.
        w0: border weight amplitude (U-Net paper: 10).
        sigma: border weight width in px (U-Net paper: 5).
        class_balance: the ``w_c`` term of the weight map (`ClassBalance`).
        dice_weight: weight of the Dice term of the loss.
        ce_weight: weight of the (border-weighted) cross-entropy term.
    """

    arch: str = "unet"
    arch_options: Mapping[str, Any] = field(default_factory=dict)
    decoding: Decoding = Decoding.WATERSHED
    foreground_threshold: float = 0.5
    interior_threshold: float = 0.5
    min_area: int = 0
    boundary_width: int = 1
    w0: float = 10.0
    sigma: float = 5.0
    class_balance: ClassBalance = ClassBalance.BALANCED
    dice_weight: float = 1.0
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoding", as_enum(self.decoding, Decoding, "decoding"))
        object.__setattr__(
            self, "class_balance", as_enum(self.class_balance, ClassBalance, "class_balance")
        )
        if not isinstance(self.arch_options, Mapping):
            raise ValueError(
                f"arch_options={self.arch_options!r}; expected a mapping of architecture "
                "options, e.g. arch_options='{base_width: 16}'"
            )
        object.__setattr__(self, "arch_options", dict(self.arch_options))
        check_probability(self.foreground_threshold, "foreground_threshold")
        check_probability(self.interior_threshold, "interior_threshold")
        if self.min_area < 0 or self.boundary_width < 1:
            raise ValueError(
                f"min_area={self.min_area!r}, boundary_width={self.boundary_width!r}; expected "
                "min_area >= 0 and boundary_width >= 1"
            )
        for name in ("w0", "sigma", "dice_weight", "ce_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected a value >= 0")
