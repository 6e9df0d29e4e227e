"""Augmentation presets on ``torchvision.transforms.v2``.

Items carry the image as ``tv_tensors.Image`` and the mask as ``tv_tensors.Mask`` (instance
masks as :class:`InstanceMasks`), so every geometric transform moves them together and
resamples masks with nearest neighbour. Images keep their stored form through the transforms:
8-bit files stay ``uint8`` (``[0, 255]``, torchvision's convention), anything else is float in
[0, 1]; the dataset converts to float and normalises once, at the end
(:func:`segwise.data.normalize_tensor`, with the ``mean``/``std`` of :class:`DataInfo`, stored in
checkpoints).

Padding: images are padded with ``info.mean`` (which is 0 after normalisation; ``mean * 255``
for ``uint8`` images), class-index masks with ``info.labels.pad_value``
(:attr:`segwise.labels.LabelSpace.pad_value`: ``ignore_index``, or ``num_classes`` when the
data defines none, never a real class; the engine leaves that value out of loss and metrics),
instance masks and soft masks with 0.

The training preset warps each item ONCE: scale, crop, flips and rotation are composed into one
affine map (:mod:`segwise.data.affine`) and applied with OpenCV's ``warpAffine`` (bilinear for
the image, nearest for masks). OpenCV was chosen by measurement: it warps ``uint8`` images
2.5-3.4x faster than ``torch.grid_sample`` on float and 4-11x faster than ``torchvision``'s
``F.affine`` on ``uint8`` (CamVid and dsb2018, one thread each; docs/benchmarks.md, "Data").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from segwise._validation import check_positive
from segwise.data.affine import AffineRanges, output_to_source, sample_affine, warp
from segwise.data.info import DataInfo

__all__ = [
    "InstanceMasks",
    "RandomAffineCrop",
    "RandomScale",
    "eval_transforms",
    "train_transforms",
]

# the value that stands for 1.0 in each image dtype (torchvision's convention)
_UNIT = {torch.uint8: 255.0, torch.uint16: 65535.0, torch.float32: 1.0, torch.float64: 1.0}


class InstanceMasks(tv_tensors.Mask):
    """A ``(K, H, W)`` stack of per-instance 0/1 masks.

    Geometric transforms treat it as any mask (nearest resampling), but padding fills it with 0:
    a padded pixel belongs to no instance. (The semantic mask is padded with the ignore label.)
    """


def image_fill(mean: tuple[float, ...], dtype: torch.dtype) -> list[float]:
    """The padding value of an image of ``dtype``: the dataset's mean in that dtype's range."""
    if dtype not in _UNIT:
        raise ValueError(
            f"images of dtype {dtype} are not supported by the transforms; expected uint8, "
            "uint16 or float (segwise.data.image_to_tensor converts any image)"
        )
    unit = _UNIT[dtype]
    return [round(m * unit) if unit > 1 else float(m) for m in mean]


class RandomScale(v2.Transform):
    """Resize image and mask by one random factor drawn log-uniformly from ``scale``.

    (Not used by :func:`train_transforms`, which folds scaling into :class:`RandomAffineCrop`.)

    Args:
        scale: ``(min, max)`` factors, e.g. ``(0.5, 2.0)``.
    """

    def __init__(self, scale: tuple[float, float]) -> None:
        super().__init__()
        self.scale = _scale_range(scale)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        import math

        h, w = v2.query_size(flat_inputs)
        lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
        s = math.exp(lo + (hi - lo) * float(torch.rand(())))
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image | tv_tensors.Mask | tv_tensors.BoundingBoxes):
            return F.resize(inpt, params["size"], antialias=True)
        return inpt


def _scale_range(scale: tuple[float, float]) -> tuple[float, float]:
    lo, hi = scale
    check_positive(lo, "scale[0]")
    if hi < lo:
        raise ValueError(f"scale={scale!r} is not valid; expected (min, max) with min <= max")
    return float(lo), float(hi)


class RandomAffineCrop(v2.Transform):
    """Random scale, crop (padded), flips and rotation as ONE warp of image and masks.

    The composed map and its randomness are described in :mod:`segwise.data.affine`. Images
    (``(C, H, W)`` uint8, uint16 or float) are resampled bilinearly and padded with ``mean``;
    class-index masks (``(H, W)`` integer) nearest and padded with ``pad_value``; soft masks
    (float) and :class:`InstanceMasks` nearest and padded with 0; ``BoundingBoxes`` get the
    bounding box of their mapped corners, clipped to the crop.

    Args:
        ranges: crop size and the random ranges.
        mean: per-channel image padding in [0, 1] (scaled to the image's dtype).
        pad_value: label of padded class-index mask pixels.
        label_range: ``(min, max)`` of the class-index labels when known (e.g. from
            :class:`DataInfo`): picks the 8- or 16-bit working type without scanning the mask.
        colour: a colour transform applied to the warped image within the same call
            (:class:`segwise.data.photometric.ColorJitter` or ``BrightnessContrast``): the
            same result as a separate step after this one, without a second pass of
            ``torchvision``'s per-call machinery (~0.45 ms per item, docs/benchmarks.md).
    """

    def __init__(self, ranges: AffineRanges, *, mean: tuple[float, ...], pad_value: int,
                 label_range: tuple[int, int] | None = None,
                 colour: v2.Transform | None = None) -> None:
        super().__init__()
        self.ranges = ranges
        self.mean = tuple(mean)
        self.pad_value = int(pad_value)
        self.label_range = label_range
        self.colour = colour

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        params = sample_affine(1, self.ranges)
        inverse = output_to_source(params, np.array([[h, w]]), self.ranges.crop_size)[0]
        # OpenCV's nearest rounds differently for other dtypes and channel counts (a few
        # pixels): with several masks, all are gathered from ONE map of source pixels
        masks = sum(isinstance(x, tv_tensors.Mask) for x in flat_inputs)
        index = nearest_source(h, w, inverse, self.ranges.crop_size) if masks > 1 else None
        colour = self.colour.make_params(flat_inputs) if self.colour is not None else None
        return {"inverse": inverse, "index": index, "colour": colour}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        inverse, size, index = params["inverse"], self.ranges.crop_size, params["index"]
        if isinstance(inpt, tv_tensors.Image):
            out = _warp_image(inpt, inverse, size, image_fill(self.mean, inpt.dtype))
            if self.colour is not None:
                out = self.colour.transform(out, params["colour"])
            return out
        if isinstance(inpt, tv_tensors.Mask):
            fill = 0 if isinstance(inpt, InstanceMasks) or inpt.is_floating_point() else (
                self.pad_value)
            if index is not None:
                return _gather_labels(inpt, index, fill)
            return _warp_labels(inpt, inverse, size, fill, known=self.label_range)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return _warp_boxes(inpt, inverse, size)
        return inpt


def _warp_image(image: torch.Tensor, inverse: np.ndarray, size: tuple[int, int],
                fill: list[float]) -> torch.Tensor:
    plain = image.as_subclass(torch.Tensor)
    if plain.dtype == torch.float64:
        plain = plain.float()
    # (C, H, W) -> (H, W, C): a free view when the dataset made the image from an HWC array
    hwc = np.ascontiguousarray(plain.permute(1, 2, 0).numpy())
    out = warp(hwc, inverse, size, nearest=False, fill=tuple(fill))
    return tv_tensors.wrap(torch.from_numpy(out).permute(2, 0, 1), like=image)


def nearest_source(height: int, width: int, inverse: np.ndarray, crop_size: tuple[int, int]
                   ) -> torch.Tensor:
    """``(crop_h, crop_w)`` int64: the flat index of each output pixel's nearest source pixel
    (``y * width + x``), -1 outside the source: one resampling that every mask shares."""
    dtype = np.float32 if height * width <= 2**24 else np.float64  # exact integers
    source = np.arange(height * width, dtype=dtype).reshape(height, width)
    return torch.from_numpy(warp(source, inverse, crop_size, nearest=True, fill=-1.0)
                            ).to(torch.int64)


def _gather_labels(mask: torch.Tensor, index: torch.Tensor, fill: float) -> torch.Tensor:
    """``(H, W)`` or ``(K, H, W)`` labels at :func:`nearest_source` pixels; ``fill`` outside.

    For a stack (instance masks), only the planes with a pixel inside the box of sampled
    source pixels are gathered; the others come out as ``fill`` (empty instances).
    """
    plain = mask.as_subclass(torch.Tensor)
    valid = index >= 0
    flat_index = index.clamp(min=0).flatten()
    lead = plain.shape[:-2]
    if plain.ndim == 3 and plain.shape[0] > 1 and bool(valid.any()):
        source = index[valid]
        rows, cols = source // plain.shape[-1], source % plain.shape[-1]
        box = plain[:, int(rows.min()):int(rows.max()) + 1, int(cols.min()):int(cols.max()) + 1]
        hit = box.flatten(1).any(1).nonzero()[:, 0]
        out = plain.new_full((plain.shape[0], flat_index.numel()), fill)
        if len(hit):
            out[hit] = plain[hit].flatten(1).index_select(1, flat_index)
    else:
        out = plain.reshape(*lead, -1).index_select(-1, flat_index)
    out = out.reshape(*lead, *index.shape)
    out = torch.where(valid, out, torch.tensor(fill, dtype=plain.dtype))
    return tv_tensors.wrap(out, like=mask)


def _label_dtype(mask: torch.Tensor, fill: int, known: tuple[int, int] | None) -> torch.dtype:
    """The smallest dtype OpenCV warps that holds every label (and the fill) exactly."""
    if mask.dtype in (torch.uint8, torch.bool) and 0 <= fill <= 255:
        return torch.uint8
    if known is not None:
        lo, hi = known
    elif mask.numel():
        lo, hi = (int(v) for v in torch.aminmax(mask.to(torch.int64)))
    else:
        lo, hi = 0, 0
    lo, hi = min(lo, fill), max(hi, fill)
    if lo >= 0 and hi <= 255:
        return torch.uint8
    if lo >= -(2**15) and hi < 2**15:
        return torch.int16
    if lo >= -(2**24) and hi <= 2**24:
        return torch.float32  # integers up to 2^24 are exact in float32
    raise ValueError(f"mask labels in [{lo}, {hi}] are too large to warp; expected |label| <= 2^24")


def _warp_labels(mask: torch.Tensor, inverse: np.ndarray, size: tuple[int, int],
                 fill: int, *, known: tuple[int, int] | None = None) -> torch.Tensor:
    """Nearest-neighbour warp of ``(H, W)`` or ``(K, H, W)`` labels; dtype kept."""
    plain = mask.as_subclass(torch.Tensor)
    if plain.ndim == 3 and plain.shape[0] == 0:
        return tv_tensors.wrap(plain.new_zeros((0, *size)), like=mask)
    work = torch.float32 if plain.is_floating_point() else _label_dtype(plain, fill, known)
    arr = plain.to(work).numpy()
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr.transpose(1, 2, 0))
    out = warp(arr, inverse, size, nearest=True, fill=fill)
    result = torch.from_numpy(out)
    if result.ndim == 3:
        result = result.permute(2, 0, 1)
    return tv_tensors.wrap(result.to(plain.dtype), like=mask)


def _warp_boxes(boxes: tv_tensors.BoundingBoxes, inverse: np.ndarray,
                size: tuple[int, int]) -> tv_tensors.BoundingBoxes:
    fmt = boxes.format
    xyxy = F.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    b = xyxy.as_subclass(torch.Tensor).to(torch.float64)
    forward = np.linalg.inv(np.vstack([inverse, [0.0, 0.0, 1.0]]))[:2]
    m = torch.from_numpy(forward)
    # box edges -> corner pixel centres (-1/2), mapped, back to edges (+1/2)
    xs = b[:, [0, 2, 0, 2]] - 0.5
    ys = b[:, [1, 1, 3, 3]] - 0.5
    px = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] + 0.5
    py = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] + 0.5
    h, w = size
    out = torch.stack([px.amin(1).clamp(0, w), py.amin(1).clamp(0, h),
                       px.amax(1).clamp(0, w), py.amax(1).clamp(0, h)], dim=1)
    out = tv_tensors.BoundingBoxes(out.to(boxes.dtype), format="XYXY", canvas_size=(h, w))
    return F.convert_bounding_box_format(out, new_format=fmt)


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
    """The training preset: [random scale -> random crop (padded) -> flips -> rotation] as one
    warp (:class:`RandomAffineCrop`) -> elastic -> colour jitter.

    Args:
        info: the dataset's :class:`DataInfo` (padding values, channels).
        crop_size: output ``(H, W)`` (or one int for a square); smaller images are padded.
        scale: random resize factors (log-uniform) before the crop; ``(1, 1)``: no scaling.
        hflip: random horizontal flips (p = 0.5).
        vflip: random vertical flips (p = 0.5), e.g. for microscopy.
        rotation: maximum rotation in degrees (0: none); corners are padded.
        color_jitter: strength in [0, 1] of brightness/contrast (and saturation/hue for RGB).
        elastic: random elastic deformation (p = 0.5; useful for microscopy). The image is
            converted to float in [0, 1] before it.

    Returns:
        A ``v2.Compose`` over the item dict; the output image and masks are ``crop_size``, the
        image keeps its dtype (``uint8`` stays ``uint8``) unless ``elastic``.
    """
    size = _size(crop_size)
    if rotation:
        check_positive(rotation, "rotation")
    if color_jitter and not 0 < color_jitter <= 1:
        raise ValueError(f"color_jitter={color_jitter!r} is not valid; expected [0, 1]")
    ranges = AffineRanges(crop_size=size, scale=_scale_range(tuple(scale)),
                          rotation=float(rotation), hflip=bool(hflip), vflip=bool(vflip))
    labels = info.labels.label_range  # every value a class-index mask can hold
    colour: v2.Transform | None = None
    if color_jitter:
        from segwise.data.photometric import BrightnessContrast, ColorJitter

        j = float(color_jitter)
        colour = (ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(j, 0.5) / 5)
                  if info.in_channels == 3 else BrightnessContrast(j))
    # colour rides with the warp (one call) unless the elastic step comes between them
    geometry = RandomAffineCrop(ranges, mean=info.mean, pad_value=info.labels.pad_value,
                                label_range=labels, colour=None if elastic else colour)
    steps: list[v2.Transform] = [geometry]
    if elastic:
        fill = {tv_tensors.Image: list(info.mean), InstanceMasks: 0,
                tv_tensors.Mask: info.labels.pad_value}  # InstanceMasks first: isinstance order
        steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
        steps.append(v2.RandomApply([v2.ElasticTransform(alpha=30.0, sigma=5.0, fill=fill)],
                                    p=0.5))
        if colour is not None:
            steps.append(colour)
    return v2.Compose(steps)


def eval_transforms(info: DataInfo, *, crop_size: int | tuple[int, int] | None = None
                    ) -> v2.Compose:
    """The evaluation preset: no randomness; optionally a centre crop (padded) to ``crop_size``.

    Without ``crop_size`` items keep their size (the loader's collate pads a batch of
    different sizes, see :func:`segwise.data.make_loader`). The image keeps its dtype.
    """
    steps: list[v2.Transform] = []
    if crop_size is not None:
        size = _size(crop_size)
        steps += [_PadTo(size, info), v2.CenterCrop(size)]
    else:
        steps.append(v2.Identity())
    return v2.Compose(steps)


class _PadTo(v2.Transform):
    """Pad bottom/right up to ``size`` with the dataset's fill values (never crops)."""

    def __init__(self, size: tuple[int, int], info: DataInfo) -> None:
        super().__init__()
        self.size = size
        self.mean = tuple(info.mean)
        self.pad_value = info.labels.pad_value

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        return {"padding": [0, 0, max(0, self.size[1] - w), max(0, self.size[0] - h)]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not any(params["padding"]):
            return inpt
        if isinstance(inpt, tv_tensors.Image):
            return F.pad(inpt, params["padding"], fill=image_fill(self.mean, inpt.dtype))
        if isinstance(inpt, InstanceMasks):
            return F.pad(inpt, params["padding"], fill=0)
        if isinstance(inpt, tv_tensors.Mask):
            fill = 0 if inpt.is_floating_point() else self.pad_value
            return F.pad(inpt, params["padding"], fill=fill)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return F.pad(inpt, params["padding"])
        return inpt
