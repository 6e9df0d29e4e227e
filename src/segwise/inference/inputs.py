"""The input forms a predictor accepts, turned into one value (:class:`PreparedImage`).

Accepted (alone or in a list/tuple, in any mix):

- a file path (``str`` or ``Path``): read with :func:`segwise.data.read_image`;
- a numpy image ``(H, W, C)`` or ``(H, W)``: integers are scaled by their dtype's maximum
  (uint8 / 255, uint16 / 65535), floats must already lie in ``[0, 1]``;
- a torch tensor ``(C, H, W)`` or ``(N, C, H, W)``, already normalised as in training (a
  dataset item's ``"image"``);
- a :class:`PreparedImage` (what the CLI reads once and also draws overlays from).

Channels are matched as in training (:func:`segwise.data.datasets.image_to_tensor`: grey is
repeated to RGB, an alpha channel dropped); every other mismatch is a ``ValueError`` naming the
input and what to pass instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

__all__ = ["ImageInput", "PreparedImage", "prepare_images"]

#: What ``Predictor.predict`` accepts (see the module docstring).
ImageInput = Union[str, Path, np.ndarray, "PreparedImage", Any, Sequence[Any]]


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """One image, ready for a model and for pictures.

    Attributes:
        name: the file stem for a path, else ``image_<i>`` (``i``: position in the call).
        source: the file it was read from, or ``None`` for arrays and tensors.
        normalized: ``float32 (C, H, W)``, ``(x - mean) / std`` with the training statistics.
        unit: ``float32 (C, H, W)`` in ``[0, 1]``: the pixels before normalisation.
    """

    name: str
    source: Path | None
    normalized: np.ndarray
    unit: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return tuple(self.normalized.shape[-2:])


def _stats(info: Any) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(info.mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(info.std, np.float32).reshape(-1, 1, 1)
    return mean, std


def _from_unit(name: str, source: Path | None, unit: np.ndarray, info: Any) -> PreparedImage:
    mean, std = _stats(info)
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    normalized = (unit - mean) / std  # the formula of segwise.data.normalize_tensor
    return PreparedImage(name, source, normalized.astype(np.float32), unit)


def _from_path(path: Path, info: Any) -> PreparedImage:
    from segwise.data import read_image
    from segwise.data.datasets import image_to_tensor
    from segwise.data.volumes import VOLUME_SUFFIXES

    if path.name.lower().endswith(VOLUME_SUFFIXES):
        raise ValueError(
            f"{path} is a volume, but this model was trained on 2D images and predicts image "
            "files (.png, .jpg, .tif, ...); predict volumes with a run trained on volumes"
        )

    unit = image_to_tensor(read_image(path), info, source=path).numpy()
    return _from_unit(path.stem, path, unit, info)


def _from_array(array: np.ndarray, name: str, info: Any) -> PreparedImage:
    from segwise.data.datasets import image_to_tensor

    if array.ndim not in (2, 3):
        raise ValueError(
            f"{name}: a numpy image must be (H, W, C) or (H, W), got shape {array.shape}; pass "
            "a batch as a list of images, or as a normalised torch tensor (N, C, H, W)"
        )
    c = info.in_channels
    if array.ndim == 3 and array.shape[-1] not in (c, 1, 4) and array.shape[0] == c:
        raise ValueError(
            f"{name}: shape {array.shape} looks channels-first; numpy images are (H, W, C): "
            "pass image.transpose(1, 2, 0)"
        )
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError(f"{name}: the float image holds NaN or Inf; pass finite pixels")
        lo, hi = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name}: a float image must lie in [0, 1], got values in [{lo:g}, {hi:g}]; "
                "divide by 255 (8-bit pixels), pass the uint8 array itself, or pass a "
                "normalised torch tensor (C, H, W)"
            )
    elif array.dtype.kind not in "uib":
        raise ValueError(f"{name}: dtype {array.dtype} is not an image; pass uint8, uint16 or "
                         "float in [0, 1]")
    unit = image_to_tensor(array, info, source=name).numpy()
    return _from_unit(name, None, unit, info)


def _from_tensor(tensor: Any, name: str, info: Any) -> list[PreparedImage]:
    c = info.in_channels
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[1] != c:
        raise ValueError(
            f"{name}: a tensor must be normalised (C, H, W) or (N, C, H, W) with C = {c}, got "
            f"shape {tuple(tensor.shape)}; for an (H, W, C) picture pass a numpy array instead"
        )
    if not tensor.is_floating_point():
        raise ValueError(
            f"{name}: a tensor must be a normalised float image, got dtype {tensor.dtype}; "
            "pass the raw pixels as a numpy (H, W, C) array instead"
        )
    mean, std = _stats(info)
    batch = tensor.detach().float().cpu().numpy()
    out = []
    for k, normalized in enumerate(batch):
        unit = np.clip(normalized * std + mean, 0.0, 1.0).astype(np.float32)
        label = name if len(batch) == 1 else f"{name}_{k}"
        out.append(PreparedImage(label, None, np.ascontiguousarray(normalized), unit))
    return out


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
    return torch is not None and isinstance(value, torch.Tensor)


def prepare_images(images: ImageInput, info: Any) -> list[PreparedImage]:
    """Every accepted input form -> one :class:`PreparedImage` per image, in input order.

    Args:
        images: one input or a list/tuple of inputs (see the module docstring).
        info: the training data's :class:`~segwise.data.DataInfo` (channels, mean, std).

    Raises:
        FileNotFoundError: a path that does not exist.
        TypeError: an input of another type, naming it and the accepted forms.
        ValueError: a shape, dtype or value range a model cannot take, naming the fix.
    """
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ValueError("no images given; pass a path, an array, a tensor or a list of them")
    out: list[PreparedImage] = []
    for i, item in enumerate(items):
        name = f"image_{i}"
        if isinstance(item, PreparedImage):
            out.append(item)
        elif isinstance(item, (str, Path)):
            path = Path(item)
            if not path.is_file():
                raise FileNotFoundError(f"image {path} does not exist (or is not a file)")
            out.append(_from_path(path, info))
        elif isinstance(item, np.ndarray):
            out.append(_from_array(item, name, info))
        elif _is_tensor(item):
            out.extend(_from_tensor(item, name, info))
        else:
            raise TypeError(
                f"{name}: {type(item).__name__} is not an image; pass a file path, a numpy "
                "(H, W, C) image, a normalised torch tensor (C, H, W) / (N, C, H, W), or a list "
                "of these"
            )
    return out
