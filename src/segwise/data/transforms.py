"""Augmentation presets on ``torchvision.transforms.v2``.

Items carry the image as ``tv_tensors.Image`` (float in [0, 1], before normalisation) and the
mask as ``tv_tensors.Mask``, so every geometric transform moves both together and resamples the
mask with nearest neighbour. Padding: images are padded with ``info.mean`` (which is 0 after
normalisation), masks with ``info.pad_value`` (``ignore_index``, or 255 =
:data:`segwise.data.info.DEFAULT_IGNORE_INDEX` when the data defines none: the engine ignores
that value in loss and metrics). Normalisation itself is done by the dataset after the
transform, with the ``mean``/``std`` stored in :class:`DataInfo` (and so in checkpoints).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from segwise._validation import check_positive
from segwise.data.info import DataInfo

__all__ = ["InstanceMasks", "RandomScale", "eval_transforms", "train_transforms"]


class InstanceMasks(tv_tensors.Mask):
    """A ``(K, H, W)`` stack of per-instance 0/1 masks.

    Geometric transforms treat it as any mask (nearest resampling), but padding fills it with 0:
    a padded pixel belongs to no instance. (The semantic mask is padded with the ignore label.)
    """


class RandomScale(v2.Transform):
    """Resize image and mask by one random factor drawn log-uniformly from ``scale``.

    Args:
        scale: ``(min, max)`` factors, e.g. ``(0.5, 2.0)``.
    """

    def __init__(self, scale: tuple[float, float]) -> None:
        super().__init__()
        lo, hi = scale
        check_positive(lo, "scale[0]")
        if hi < lo:
            raise ValueError(f"scale={scale!r} is not valid; expected (min, max) with min <= max")
        self.scale = (float(lo), float(hi))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
        s = math.exp(lo + (hi - lo) * float(torch.rand(())))
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image | tv_tensors.Mask | tv_tensors.BoundingBoxes):
            return F.resize(inpt, params["size"], antialias=True)
        return inpt


def _fill(info: DataInfo) -> dict[type, Any]:
    # InstanceMasks before Mask: lookups by isinstance take the first match
    return {
        tv_tensors.Image: list(info.mean),
        InstanceMasks: 0,
        tv_tensors.Mask: info.pad_value,
    }


def _size(crop_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(crop_size, int):
        crop_size = (crop_size, crop_size)
    h, w = crop_size
    check_positive(h, "crop_size[0]")
    check_positive(w, "crop_size[1]")
    return int(h), int(w)


def train_transforms(
    info: DataInfo,
    *,
    crop_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    vflip: bool = False,
    rotation: float = 0,
    color_jitter: float = 0.0,
    elastic: bool = False,
) -> v2.Compose:
    """The training preset: random scale -> random crop (padded) -> flips -> rotation ->
    elastic -> colour jitter.

    Args:
        info: the dataset's :class:`DataInfo` (padding values, channels).
        crop_size: output ``(H, W)`` (or one int for a square); smaller images are padded.
        scale: random resize factors before the crop; ``(1, 1)`` switches scaling off.
        hflip: random horizontal flips (p = 0.5).
        vflip: random vertical flips (p = 0.5), e.g. for microscopy.
        rotation: maximum rotation in degrees (0: none); corners are padded.
        color_jitter: strength in [0, 1] of brightness/contrast (and saturation/hue for RGB).
        elastic: random elastic deformation (useful for microscopy).

    Returns:
        A ``v2.Compose`` over the item dict; the output image and mask are ``crop_size``.
    """
    size = _size(crop_size)
    fill = _fill(info)
    steps: list[v2.Transform] = []
    if tuple(scale) != (1, 1):
        steps.append(RandomScale(tuple(scale)))
    steps.append(v2.RandomCrop(size, pad_if_needed=True, fill=fill))
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if vflip:
        steps.append(v2.RandomVerticalFlip())
    if rotation:
        check_positive(rotation, "rotation")
        steps.append(v2.RandomRotation(rotation, fill=fill))
    if elastic:
        steps.append(v2.RandomApply([v2.ElasticTransform(alpha=30.0, sigma=5.0, fill=fill)],
                                    p=0.5))
    if color_jitter:
        if not 0 < color_jitter <= 1:
            raise ValueError(f"color_jitter={color_jitter!r} is not valid; expected [0, 1]")
        j = float(color_jitter)
        if info.in_channels == 3:
            hue = min(j, 0.5) / 5
            steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j, hue=hue))
        else:
            steps.append(_BrightnessContrast(j))
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: None,
                             "others": None}))
    return v2.Compose(steps)


class _BrightnessContrast(v2.Transform):
    """Brightness/contrast jitter for any channel count (ColorJitter needs 1 or 3 channels)."""

    def __init__(self, strength: float) -> None:
        super().__init__()
        self.strength = strength

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        r = (torch.rand(2) * 2 - 1) * self.strength
        return {"brightness": 1 + float(r[0]), "contrast": 1 + float(r[1])}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image):
            mean = inpt.mean(dim=(-2, -1), keepdim=True)
            out = ((inpt - mean) * params["contrast"] + mean) * params["brightness"]
            return tv_tensors.wrap(out.clamp(0, 1), like=inpt)
        return inpt


def eval_transforms(info: DataInfo, *, crop_size: int | tuple[int, int] | None = None
                    ) -> v2.Compose:
    """The evaluation preset: no randomness; optionally a centre crop (padded) to ``crop_size``.

    Without ``crop_size`` items keep their size (the loader's collate pads a batch of
    different sizes, see :func:`segwise.data.make_loader`).
    """
    steps: list[v2.Transform] = []
    if crop_size is not None:
        size = _size(crop_size)
        steps += [_PadTo(size, info), v2.CenterCrop(size)]
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: None,
                             "others": None}))
    return v2.Compose(steps)


class _PadTo(v2.Transform):
    """Pad bottom/right up to ``size`` with the dataset's fill values (never crops)."""

    def __init__(self, size: tuple[int, int], info: DataInfo) -> None:
        super().__init__()
        self.size = size
        self.fill = _fill(info)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        return {"padding": [0, 0, max(0, self.size[1] - w), max(0, self.size[0] - h)]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not any(params["padding"]):
            return inpt
        for cls, value in self.fill.items():
            if isinstance(inpt, cls):
                return F.pad(inpt, params["padding"], fill=value)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return F.pad(inpt, params["padding"])
        return inpt
