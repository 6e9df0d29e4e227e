"""Colour augmentation of the training preset: linear colour operations as ONE 3x4 matrix.

:class:`ColorJitter` draws its parameters as ``torchvision``'s ``v2.ColorJitter`` does
(brightness, contrast and saturation factors uniform in ``[max(0, 1 - j), 1 + j]``, a hue shift
uniform in ``[-h, h]`` turns, the four operations in a random order) and uses the same formulas
(torchvision's ``adjust_*``):

- brightness ``b``: ``x b``;
- contrast ``c``: ``x c + m (1 - c)``, ``m`` the mean grey level of the image at that point;
- saturation ``s``: ``x s + grey(x) (1 - s)``, grey weights 0.299/0.587/0.114 (ITU-R BT.601);
- hue: a shift of the HSV hue.

The first three are linear in RGB, so the ones on each side of the hue shift compose into one
matrix ``x -> M x + o`` (:func:`color_matrices`; ``m`` follows from the image's mean colour
through the earlier operations) applied in one pass: OpenCV's ``cv2.transform`` on ``uint8``
(saturating), a matrix product on float. The hue shift goes through HSV: OpenCV's 8-bit HSV on
``uint8`` images (hue quantised to its 2-degree step), ``torchvision``'s on float. The one
difference from torchvision's step-by-step ``ColorJitter``: values are clipped to the valid
range once per group instead of after each operation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from segwise.data.affine import _cv2

__all__ = ["BrightnessContrast", "ColorJitter", "color_matrices", "color_matrix", "normalize_uint8"]

_GREY = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale
HUE = 3  # the operation index of the hue shift (0 brightness, 1 contrast, 2 saturation)


def color_matrices(order: torch.Tensor, factors: torch.Tensor, mean_rgb: torch.Tensor
                   ) -> torch.Tensor:
    """Compose brightness, contrast and saturation into one affine colour map per image.

    Args:
        order: ``(N, K)`` operation indices applied left to right (0 brightness, 1 contrast,
            2 saturation; 3, the hue shift, is not linear and is skipped here).
        factors: ``(N, 3)`` brightness, contrast and saturation factors (1: unchanged).
        mean_rgb: ``(N, 3)`` mean colour of each image in its units (e.g. [0, 1]); contrast
            needs the mean grey level at its turn.

    Returns:
        ``(N, 3, 4)`` float64 ``[M | o]``: ``x -> M x + o`` in the units of ``mean_rgb``.
    """
    n = order.shape[0]
    kw = {"dtype": torch.float64, "device": factors.device}
    f = factors.to(**kw)
    eye = torch.eye(3, **kw).expand(n, 3, 3)
    grey = torch.tensor(_GREY, **kw)
    ones = torch.ones(3, **kw)
    sat = f[:, 2, None, None] * eye + (1 - f[:, 2])[:, None, None] * torch.outer(ones, grey)
    m = eye.clone()
    o = torch.zeros(n, 3, **kw)
    mu = mean_rgb.to(**kw)
    for k in range(order.shape[1]):
        op = order[:, k].to(factors.device)[:, None, None]
        # every image's k-th operation as (A, t): x -> A x + t
        a = torch.where(op == 0, f[:, 0, None, None] * eye, eye)
        a = torch.where(op == 1, f[:, 1, None, None] * eye, a)
        a = torch.where(op == 2, sat, a)
        level = (mu @ grey)[:, None] * (1 - f[:, 1])[:, None] * ones  # contrast's offset
        t = torch.where(op[:, :, 0] == 1, level, torch.zeros_like(level))
        m = a @ m
        o = (a @ o[..., None])[..., 0] + t
        mu = (a @ mu[..., None])[..., 0] + t
    return torch.cat([m, o[..., None]], dim=-1)


def color_matrix(order: list[int], factors: np.ndarray, mean_rgb: np.ndarray) -> np.ndarray:
    """:func:`color_matrices` for one image in NumPy (the per-item CPU path: no torch
    dispatch overhead); ``(3, 4)`` float64."""
    grey = np.array(_GREY)
    m, o, mu = np.eye(3), np.zeros(3), np.asarray(mean_rgb, dtype=np.float64)
    for op in order:
        t = np.zeros(3)
        if op == 0:
            a = factors[0] * np.eye(3)
        elif op == 1:
            a = factors[1] * np.eye(3)
            t = np.full(3, (mu @ grey) * (1 - factors[1]))
        elif op == 2:
            a = factors[2] * np.eye(3) + (1 - factors[2]) * np.outer(np.ones(3), grey)
        else:
            continue
        m, o, mu = a @ m, a @ o + t, a @ mu + t
    return np.concatenate([m, o[:, None]], axis=1)


def split_at_hue(order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``order (4,)`` -> the operations before and after the hue shift."""
    i = int((order == HUE).nonzero()[0, 0])
    return order[:i], order[i + 1:]


def _uniform(lo: float, hi: float) -> float:
    return float(torch.empty(1).uniform_(lo, hi))


class ColorJitter(v2.Transform):
    """Random brightness, contrast, saturation and hue of an RGB image (masks untouched).

    Args:
        brightness: strength ``j`` of the brightness factor, in ``[max(0, 1 - j), 1 + j]``.
        contrast: the same for contrast.
        saturation: the same for saturation.
        hue: maximum hue shift in turns, in [0, 0.5].
    """

    def __init__(self, *, brightness: float, contrast: float, saturation: float,
                 hue: float) -> None:
        super().__init__()
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue={hue!r} is not valid; expected [0, 0.5]")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.hue = hue

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        order = torch.randperm(4)
        b, c, s = (_uniform(max(0.0, 1 - j), 1 + j) for j in
                   (self.brightness, self.contrast, self.saturation))
        return {"order": order, "factors": torch.tensor([b, c, s], dtype=torch.float64),
                "hue": _uniform(-self.hue, self.hue)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        if inpt.shape[-3] != 3:
            raise ValueError(f"ColorJitter needs RGB images, got {inpt.shape[-3]} channels; "
                             "use BrightnessContrast")
        plain = inpt.as_subclass(torch.Tensor)
        if plain.dtype == torch.uint8:
            hwc = np.ascontiguousarray(plain.permute(1, 2, 0).numpy())
            out = jitter_rgb8(hwc, params)
            return tv_tensors.wrap(torch.from_numpy(out).permute(2, 0, 1), like=inpt)
        before, after = split_at_hue(params["order"])
        x = _linear(plain, before, params["factors"])
        if params["hue"]:
            x = F.adjust_hue(x, params["hue"])
        return tv_tensors.wrap(_linear(x, after, params["factors"]), like=inpt)


def _linear(x: torch.Tensor, order: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Float/integer ``(3, H, W)`` through the composed matrix of ``order``, clipped once."""
    if not len(order):
        return x
    top = 1.0 if x.is_floating_point() else float(torch.iinfo(x.dtype).max)
    y = x.to(torch.float64)
    matrix = color_matrices(order[None], factors[None], y.mean(dim=(-2, -1))[None])[0]
    out = (torch.einsum("ij,jhw->ihw", matrix[:, :3], y) + matrix[:, 3, None, None])
    out = out.clamp(0, top)
    return out.to(x.dtype) if x.is_floating_point() else out.round().to(x.dtype)


def jitter_rgb8(image: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Apply :class:`ColorJitter`'s ``params`` to ``image (H, W, 3)`` uint8 RGB, in 8 bits."""
    cv2 = _cv2()
    before, after = split_at_hue(params["order"])

    def linear(img: np.ndarray, order: torch.Tensor) -> np.ndarray:
        if not len(order):
            return img
        matrix = color_matrix(order.tolist(), params["factors"].numpy(), cv2.mean(img)[:3])
        return cv2.transform(img, matrix.astype(np.float32))  # rounds and saturates

    image = linear(image, before)
    step = round(params["hue"] * 180) % 180  # OpenCV's 8-bit hue is [0, 180)
    if step:
        h, s, v = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
        h = cv2.LUT(h, ((np.arange(256) + step) % 180).astype(np.uint8))
        image = cv2.cvtColor(cv2.merge((h, s, v)), cv2.COLOR_HSV2RGB)
    return linear(image, after)


class BrightnessContrast(v2.Transform):
    """Brightness/contrast jitter for any channel count (ColorJitter needs 1 or 3 channels).

    Factors ``1 + u`` with ``u`` uniform in ``[-strength, strength]``; contrast blends each
    channel with its own mean. Integer images are computed in float and rounded back.
    """

    def __init__(self, strength: float) -> None:
        super().__init__()
        self.strength = strength

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        r = (torch.rand(2) * 2 - 1) * self.strength
        return {"brightness": 1 + float(r[0]), "contrast": 1 + float(r[1])}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        plain = inpt.as_subclass(torch.Tensor)
        top = 1.0 if plain.is_floating_point() else float(torch.iinfo(plain.dtype).max)
        x = plain.float()
        mean = x.mean(dim=(-2, -1), keepdim=True)
        out = (((x - mean) * params["contrast"] + mean) * params["brightness"]).clamp(0, top)
        if not plain.is_floating_point():
            out = out.round()
        return tv_tensors.wrap(out.to(plain.dtype), like=inpt)


def normalize_uint8(image: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
                    ) -> torch.Tensor:
    """``(C, H, W)`` uint8 -> float32 ``(x / 255 - mean) / std`` in one table lookup.

    The 256-entry table per channel is computed with the same float32 operations as the float
    path of :func:`segwise.data.normalize_tensor`, so both give identical values. The result
    is ``(C, H, W)`` over ``(H, W, C)`` memory (collating makes batches contiguous).
    """
    c = image.shape[0]
    ramp = torch.arange(256, dtype=torch.float32) / 255.0
    m = torch.tensor(mean, dtype=torch.float32)[:, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None]
    table = ((ramp[None] - m) / s).T.contiguous().numpy()  # (256, C)
    hwc = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
    if c == 1:
        out = _cv2().LUT(hwc[..., 0], table)[..., None]
    elif c <= 4:
        out = _cv2().LUT(hwc, table.reshape(256, 1, c))
    else:
        out = np.take_along_axis(table, hwc.reshape(-1, c).astype(np.intp), axis=0)
        out = out.reshape(hwc.shape)
    return torch.from_numpy(out).permute(2, 0, 1)
