"""3D training augmentation of a normalised patch and its labels (NumPy, per item).

nnU-Net's 3D preset, reduced to what is cheap per item on a CPU (Isensee et al. 2021,
supplementary "Data augmentation"; probabilities are theirs):

- in-plane 90-degree rotations (the ``(H, W)`` plane, when its two voxel sizes agree; the
  patch is cut with ``H`` and ``W`` swapped for odd turns, so every patch has the patch size);
- scaling by ``s ~ U(0.7, 1.4)`` with probability 0.2: a box ``patch / s`` is cut and
  resized to the patch (trilinear for the image, nearest for the labels);
- flips along each axis with probability 0.5;
- intensity: multiplicative brightness ``U(0.75, 1.25)`` (p 0.15), contrast ``U(0.75, 1.25)``
  around the mean, clipped to the patch's range (p 0.15), gamma ``U(0.7, 1.5)`` on the
  patch rescaled to [0, 1] (p 0.3), Gaussian noise of variance ``U(0, 0.1)`` (p 0.1).

Not done (and not claimed): small-angle rotations, elastic deformation, low-resolution
simulation. Randomness: NumPy's global generator (seeded per run and loader worker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SpatialDraw", "VolumeAugment"]


@dataclass(frozen=True)
class SpatialDraw:
    """One patch's spatial draw: the box to cut, then its turns and resize to the patch."""

    source_size: tuple[int, int, int]  # the box cut from the volume, (D, H, W)
    turns: int = 0  # 90-degree turns in the (H, W) plane


@dataclass
class VolumeAugment:
    """Callable ``(image (C, D, H, W), labels (D, H, W), draw) -> (image, labels)`` (module
    docstring); ``draw`` (:meth:`draw`) says which box was cut for it.

    Attributes:
        patch_size: the output ``(D, H, W)``.
        flips: random flips along each axis.
        rotate_in_plane: random 90-degree turns in the ``(H, W)`` plane (use only when its
            voxel sizes agree).
        scale: ``(low, high)`` scale factors, or None for no scaling.
        scale_probability: probability of scaling a patch.
        intensity: brightness, contrast, gamma and noise.
        pad_value: the label of voxels scaled in from outside the volume (no class).
    """

    patch_size: tuple[int, int, int]
    flips: bool = True
    rotate_in_plane: bool = True
    scale: tuple[float, float] | None = (0.7, 1.4)
    scale_probability: float = 0.2
    intensity: bool = True
    pad_value: int = 255

    def draw(self) -> SpatialDraw:
        """Draw a patch's turns and scale: the box to cut from the volume for it."""
        d, h, w = self.patch_size
        turns = int(np.random.randint(4)) if self.rotate_in_plane else 0
        factor = 1.0
        if self.scale is not None and np.random.random() < self.scale_probability:
            factor = float(np.random.uniform(*self.scale))
        if turns % 2:
            h, w = w, h
        size = tuple(max(1, round(v / factor)) for v in (d, h, w))
        return SpatialDraw(size, turns)  # type: ignore[arg-type]

    def __call__(self, image: np.ndarray, labels: np.ndarray,
                 draw: SpatialDraw) -> tuple[np.ndarray, np.ndarray]:
        if draw.turns:
            image = np.rot90(image, draw.turns, axes=(-2, -1))
            labels = np.rot90(labels, draw.turns, axes=(-2, -1))
        target = tuple(self.patch_size)
        if tuple(labels.shape) != target:
            image, labels = _resize(image, labels, target)
        if self.flips:
            for axis in range(3):
                if np.random.random() < 0.5:
                    image = np.flip(image, axis=axis + 1)
                    labels = np.flip(labels, axis=axis)
        if self.intensity:
            image = _intensity(np.ascontiguousarray(image, dtype=np.float32))
        return image, labels


def _resize(image: np.ndarray, labels: np.ndarray,
            size: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    y = torch.from_numpy(np.ascontiguousarray(labels))[None, None].float()
    x = F.interpolate(x, size=size, mode="trilinear", align_corners=False)[0]
    y = F.interpolate(y, size=size, mode="nearest")[0, 0]
    return x.numpy(), y.numpy().astype(labels.dtype)


def _intensity(image: np.ndarray) -> np.ndarray:
    if np.random.random() < 0.15:  # brightness
        image = image * np.float32(np.random.uniform(0.75, 1.25))
    if np.random.random() < 0.15:  # contrast, per channel, clipped to the patch's range
        lo = image.min(axis=(1, 2, 3), keepdims=True)
        hi = image.max(axis=(1, 2, 3), keepdims=True)
        mean = image.mean(axis=(1, 2, 3), keepdims=True)
        image = np.clip((image - mean) * np.float32(np.random.uniform(0.75, 1.25)) + mean, lo, hi)
    if np.random.random() < 0.3:  # gamma on [0, 1], back to the original range
        lo = image.min(axis=(1, 2, 3), keepdims=True)
        span = np.maximum(image.max(axis=(1, 2, 3), keepdims=True) - lo, 1e-7)
        gamma = np.float32(np.random.uniform(0.7, 1.5))
        image = ((image - lo) / span) ** gamma * span + lo
    if np.random.random() < 0.1:  # Gaussian noise
        sigma = np.sqrt(np.random.uniform(0.0, 0.1))
        image = image + np.random.normal(0.0, sigma, image.shape).astype(np.float32)
    return image.astype(np.float32, copy=False)
