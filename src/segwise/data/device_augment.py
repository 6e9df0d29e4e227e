"""The training preset applied per batch on the training device (``--augment-on device``).

The loader then only decodes: items keep their stored size and dtype (``uint8`` for 8-bit
files, not normalised; :class:`ItemSize` records each item's size before collation pads the
batch), and :class:`DeviceAugment` does per batch, on the batch's device:

1. geometry: the same random scale, crop, flips and rotation as the CPU preset, composed into
   one affine map per item (:mod:`segwise.data.affine`: same draws, same matrices), sampled
   with ``grid_sample`` (bilinear for the image, nearest for the mask); output pixels whose
   nearest source pixel lies outside the item get the image mean and the pad label;
2. colour: the preset's brightness/contrast/saturation as one 3x4 matrix per item
   (:func:`segwise.data.photometric.color_matrices`) on each side of an HSV hue shift
   (formulas of ``torchvision``'s ``adjust_hue``, per item), clipped to [0, 1] per group;
3. normalisation with the dataset's mean/std.

On a CPU "device" with ``uint8`` batches the same draws go through the CPU pipeline's OpenCV
functions item by item instead (:class:`Kernels`; grid_sample is several times slower there).

:class:`ResidentBatches` goes one step further for data that fits: the decoded dataset is
kept on the device and batches are gathered there, with no loader at all.

Randomness comes from the object's own CPU generator (:meth:`DeviceAugment.seed`, which the
trainer calls every epoch), so a run is repeatable for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from enum import Enum
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segwise.data.affine import AffineRanges, output_to_source, sample_affine
from segwise.data.info import DataInfo
from segwise.data.photometric import HUE, color_matrices

__all__ = ["DeviceAugment", "ItemSize", "Kernels", "ResidentBatches", "hsv_hue_shift"]


class Kernels(str, Enum):
    """Which kernels :class:`DeviceAugment` resamples with."""

    AUTO = "auto"  # OpenCV for uint8 batches on the CPU (its fastest kernels), torch elsewhere
    TORCH = "torch"  # affine grids + grid_sample, colour as tensor ops (any device)
    OPENCV = "opencv"  # per item with the CPU pipeline's functions (uint8 batches on the CPU)


class ItemSize:
    """A dataset transform that only records ``item["size"] = (H, W)`` (kept by collation)."""

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        item["size"] = tuple(int(v) for v in item["image"].shape[-2:])
        return item


def hsv_hue_shift(rgb: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift the HSV hue of ``rgb (N, 3, H, W)`` in [0, 1] by ``shift (N,)`` turns.

    RGB -> HSV as ``torchvision``'s ``adjust_hue`` (hexcone model); HSV -> RGB with the
    equivalent closed form ``f(n) = v - v s max(0, min(k, 4 - k, 1))``, ``k = (n + 6 h) mod 6``
    for ``n = 5, 3, 1`` (R, G, B; Wikipedia, "HSL and HSV", "HSV to RGB alternative"), which
    needs no per-sector selection.
    """
    r, g, b = rgb.unbind(1)
    maxc, _ = rgb.max(1)
    minc, _ = rgb.min(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g) / cr_div, (maxc - b) / cr_div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    h6 = torch.remainder(h + shift.to(h.dtype)[:, None, None], 1.0) * 6.0
    vs = maxc * s
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(h6 + n, 6.0)
        out.append(maxc - vs * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(out, dim=1)


class DeviceAugment:
    """The training preset per batch, on the batch's device.

    Args:
        info: the dataset's :class:`DataInfo` (mean/std, pad label, channels).
        crop_size: output ``(H, W)``.
        scale, hflip, vflip, rotation, color_jitter: as :func:`segwise.data.train_transforms`.
        seed: seed of the parameter generator (:meth:`seed` re-seeds it).
        kernels: :class:`Kernels`. On a CPU "device", grid_sample and per-pixel tensor ops
            are several times slower than OpenCV's 8-bit kernels (docs/benchmarks.md, Data),
            so ``AUTO`` uses OpenCV there: the same draws and matrices, the CPU pipeline's
            resampling and colour functions, batch by batch.
    """

    def __init__(self, info: DataInfo, *, crop_size: int | tuple[int, int],
                 scale: tuple[float, float] = (0.5, 2.0), hflip: bool = True,
                 vflip: bool = False, rotation: float = 0.0, color_jitter: float = 0.0,
                 seed: int = 0, kernels: Kernels | str = Kernels.AUTO) -> None:
        from segwise._validation import as_enum
        from segwise.data.transforms import _scale_range, _size

        self.kernels = as_enum(kernels, Kernels, "kernels")

        if color_jitter and not 0 < color_jitter <= 1:
            raise ValueError(f"color_jitter={color_jitter!r} is not valid; expected [0, 1]")
        if rotation < 0:
            raise ValueError(f"rotation={rotation!r} is not valid; expected a number >= 0")
        self.info = info
        self.ranges = AffineRanges(crop_size=_size(crop_size), scale=_scale_range(tuple(scale)),
                                   rotation=float(rotation), hflip=bool(hflip),
                                   vflip=bool(vflip))
        self.color_jitter = float(color_jitter)
        self.generator = torch.Generator()
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Re-seed the generator of the augmentation parameters."""
        self.generator.manual_seed(int(seed))

    def batch(self, batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
        """Move a collated batch (``image``, ``mask``, ``size``) to ``device`` and augment it;
        other keys are kept as they are."""
        images = batch["image"].to(device, non_blocking=True)
        masks = batch["mask"].to(device, non_blocking=True)
        sizes = batch.get("size")
        out = dict(batch)
        out["image"], out["mask"] = self(images, masks, sizes=sizes)
        out.pop("size", None)
        return out

    def __call__(self, images: torch.Tensor, masks: torch.Tensor, *,
                 sizes: Sequence[tuple[int, int]] | torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment one batch.

        Args:
            images: ``(N, C, H, W)`` uint8 in [0, 255] or float in [0, 1], not normalised;
                items smaller than the batch sit at the top left (as :func:`pad_collate`
                puts them).
            masks: ``(N, H, W)`` integer class indices.
            sizes: ``(N, 2)`` each item's own ``(H, W)``; None: every item fills the batch.

        Returns:
            ``image (N, C, ch, cw)`` float32, normalised; ``mask (N, ch, cw)`` int64, with
            ``info.labels.pad_value`` where the output lies outside the item.
        """
        n, _, h, w = images.shape
        dev = images.device
        if masks.shape != (n, h, w) or masks.is_floating_point():
            raise ValueError(f"masks of shape {tuple(masks.shape)} and dtype {masks.dtype} do "
                             f"not fit images {tuple(images.shape)}; expected integer (N, H, W)")
        size_arr = (np.tile([h, w], (n, 1)) if sizes is None
                    else np.asarray(torch.as_tensor(sizes).cpu(), dtype=np.int64).reshape(n, 2))
        params = sample_affine(n, self.ranges, generator=self.generator)
        inverse_np = output_to_source(params, size_arr, self.ranges.crop_size)
        colour = self._colour_params(n, images.shape[1]) if self.color_jitter else None
        opencv = images.device.type == "cpu" and images.dtype == torch.uint8
        if self.kernels is Kernels.OPENCV and not opencv:
            raise ValueError(f"kernels='opencv' needs uint8 images on the CPU, got "
                             f"{images.dtype} on {images.device}")
        if self.kernels is Kernels.OPENCV or (self.kernels is Kernels.AUTO and opencv):
            from segwise.data.loaders import one_torch_thread

            with one_torch_thread():
                return self._opencv(images, masks, inverse_np, size_arr, colour)
        inverse = torch.from_numpy(inverse_np).to(dev, torch.float32, non_blocking=True)
        ch, cw = self.ranges.crop_size
        ys = torch.arange(ch, device=dev, dtype=torch.float32)
        xs = torch.arange(cw, device=dev, dtype=torch.float32)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        a = inverse[:, :, :, None, None]  # (N, 2, 3, 1, 1)
        src_x = a[:, 0, 0] * xx + a[:, 0, 1] * yy + a[:, 0, 2]  # (N, ch, cw) source pixels
        src_y = a[:, 1, 0] * xx + a[:, 1, 1] * yy + a[:, 1, 2]
        size_t = torch.as_tensor(size_arr, device=dev, dtype=torch.float32)
        inside = ((src_x >= -0.5) & (src_x < size_t[:, 1, None, None] - 0.5)
                  & (src_y >= -0.5) & (src_y < size_t[:, 0, None, None] - 0.5))
        grid = torch.stack([(2 * src_x + 1) / w - 1, (2 * src_y + 1) / h - 1], dim=-1)

        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        mean = torch.tensor(self.info.mean, device=dev, dtype=torch.float32)[None, :, None, None]
        std = torch.tensor(self.info.std, device=dev, dtype=torch.float32)[None, :, None, None]
        x = torch.where(inside[:, None], x, mean)
        if colour is not None:
            x = self._colour(x, colour)
        x = (x - mean) / std

        # nearest on labels: float32 holds integers up to 2^24 exactly
        m = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="border",
                          align_corners=False)[:, 0].round().to(torch.int64)
        m = torch.where(inside, m, torch.full_like(m, self.info.labels.pad_value))
        return x.contiguous(), m

    def _colour_params(self, n: int, channels: int) -> dict[str, torch.Tensor]:
        """Per-image colour draws (CPU tensors), as the CPU preset draws them."""
        j, g = self.color_jitter, self.generator
        if channels != 3:  # brightness/contrast factors, as photometric.BrightnessContrast
            return {"bc": 1 + (torch.rand(n, 2, generator=g) * 2 - 1) * j}
        order = torch.stack([torch.randperm(4, generator=g) for _ in range(n)])
        lo = max(0.0, 1 - j)
        factors = lo + torch.rand(n, 3, generator=g, dtype=torch.float64) * (1 + j - lo)
        hue = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * (min(j, 0.5) / 5)
        return {"order": order, "factors": factors, "hue": hue}

    def _colour(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """The preset's colour jitter per image (``x`` in [0, 1])."""
        if "bc" in p:  # brightness/contrast per channel, as segwise.data.photometric
            b, k = p["bc"].to(x.device, x.dtype).unbind(1)
            mu = x.mean(dim=(-2, -1), keepdim=True)
            return (((x - mu) * k[:, None, None, None] + mu) * b[:, None, None, None]).clamp(0, 1)
        order = p["order"]
        pos = (order == HUE).long().argmax(1)  # where the hue shift sits in each order
        idx = torch.arange(4)[None]
        before = torch.where(idx < pos[:, None], order, HUE)  # HUE entries are skipped
        after = torch.where(idx > pos[:, None], order, HUE)
        factors = p["factors"].to(x.device)
        x = self._linear(x, before, factors)
        x = hsv_hue_shift(x, p["hue"].to(x.device)).clamp(0, 1)
        return self._linear(x, after, factors)

    def _opencv(self, images: torch.Tensor, masks: torch.Tensor, inverse: np.ndarray,
                sizes: np.ndarray, colour: dict[str, torch.Tensor] | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same batch with the CPU pipeline's OpenCV functions, item by item."""
        from segwise.data.affine import warp
        from segwise.data.datasets import normalize_tensor
        from segwise.data.photometric import jitter_rgb8
        from segwise.data.transforms import image_fill

        crop, info = self.ranges.crop_size, self.info
        fill = tuple(image_fill(info.mean, torch.uint8))
        label = torch.uint8 if info.labels.fits_uint8 and int(masks.max()) < 256 else None
        xs, ms = [], []
        for k in range(images.shape[0]):
            h, w = (int(v) for v in sizes[k])
            hwc = images[k, :, :h, :w].permute(1, 2, 0).numpy()
            if hwc.strides[1:] != (hwc.shape[2] * hwc.itemsize, hwc.itemsize):
                hwc = np.ascontiguousarray(hwc)  # OpenCV takes padded rows, not strided pixels
            out = warp(hwc, inverse[k], crop, nearest=False, fill=fill)
            x = torch.from_numpy(out).permute(2, 0, 1)
            if colour is not None and "order" in colour:
                params = {"order": colour["order"][k], "factors": colour["factors"][k],
                          "hue": float(colour["hue"][k])}
                x = torch.from_numpy(jitter_rgb8(out, params)).permute(2, 0, 1)
            elif colour is not None:
                x = self._colour(x[None].float() / 255.0, {"bc": colour["bc"][k:k + 1]})[0]
            xs.append(normalize_tensor(x, info))
            mk = masks[k, :h, :w]
            mk = mk.to(label).numpy() if label is not None else mk.to(torch.float32).numpy()
            ms.append(torch.from_numpy(warp(mk, inverse[k], crop, nearest=True,
                                            fill=info.labels.pad_value)).to(torch.int64))
        return torch.stack(xs), torch.stack(ms)

    @staticmethod
    def _linear(x: torch.Tensor, order: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        mats = color_matrices(order.to(x.device), factors, x.mean(dim=(-2, -1)))
        mats = mats.to(x.dtype)
        out = torch.einsum("nij,njhw->nihw", mats[:, :, :3], x) + mats[:, :, 3, None, None]
        return out.clamp(0, 1)


class ResidentBatches:
    """The decoded training set kept on the device; shuffled batches gathered there.

    Replaces the ``DataLoader`` when the data fits (:meth:`fits`): images are stored once as
    ``uint8`` (8-bit files) padded to the largest image, masks as ``uint8``/``int16``, with
    each item's size. Iterating gives ``{"image", "mask", "size", "id"}`` batches for
    :meth:`DeviceAugment.batch`, in an order drawn from a seeded generator
    (:meth:`set_epoch`).

    Args:
        dataset: a :class:`segwise.data.SegmentationDataset` built with ``normalize=False``
            and no transform (items as read).
        batch_size: items per batch.
        device: where to keep the data.
        drop_last: drop the last incomplete batch.
        seed: seed of the shuffling.
    """

    def __init__(self, dataset: Any, *, batch_size: int, device: torch.device | str,
                 drop_last: bool = True, seed: int = 0, max_bytes: int | None = None) -> None:
        items = [dataset[i] for i in range(len(dataset))]
        hmax = max(it["image"].shape[-2] for it in items)
        wmax = max(it["image"].shape[-1] for it in items)
        c = items[0]["image"].shape[0]
        dtype = items[0]["image"].dtype
        top = max(int(it["mask"].max()) for it in items)
        mdtype = torch.uint8 if top < 256 else torch.int16 if top < 2**15 else torch.int32
        n = len(items)
        esize = torch.empty(0, dtype=dtype).element_size()
        need = n * hmax * wmax * (c * esize + torch.empty(0, dtype=mdtype).element_size())
        if max_bytes is not None and need > max_bytes:
            raise MemoryError(
                f"the decoded training set ({n} images padded to {hmax}x{wmax}) needs "
                f"{need / 2**30:.2f} GiB on {device}, more than the {max_bytes / 2**30:.2f} GiB "
                "allowed (half the free memory)"
            )
        self.nbytes = need
        # channels-last, as collated 8-bit batches are: items gathered from it stay
        # channels-last, and each image's (H, W, C) memory is a plain block for OpenCV
        self.images = torch.zeros((n, c, hmax, wmax), dtype=dtype, device=device).contiguous(
            memory_format=torch.channels_last)
        self.masks = torch.zeros((n, hmax, wmax), dtype=mdtype, device=device)
        self.sizes = torch.zeros((n, 2), dtype=torch.int64)
        for i, it in enumerate(items):
            h, w = it["image"].shape[-2:]
            self.images[i, :, :h, :w] = it["image"].to(device)
            self.masks[i, :h, :w] = it["mask"].to(device, mdtype)
            self.sizes[i] = torch.tensor([h, w])
        self.ids = [it["id"] for it in items]
        self.batch_size = int(batch_size)
        self.drop_last = drop_last and n > self.batch_size
        self.generator = torch.Generator()
        self.set_epoch(0, seed=seed)

    @staticmethod
    def budget(device: torch.device | str) -> int:
        """Bytes the resident copy may take: half the device's free memory (CUDA), half the
        available RAM (CPU)."""
        device = torch.device(device)
        if device.type == "cuda":
            return torch.cuda.mem_get_info(device)[0] // 2
        try:
            with open("/proc/meminfo") as f:
                fields = dict(line.split(":", 1) for line in f)
            return int(fields["MemAvailable"].split()[0]) * 1024 // 2
        except (OSError, KeyError, ValueError):  # pragma: no cover - not Linux
            return 2**31

    def set_epoch(self, epoch: int, *, seed: int = 0) -> None:
        """Seed this epoch's order from ``(seed, epoch)``."""
        self.generator.manual_seed(seed * 100_003 + epoch)

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = torch.randperm(self.images.shape[0], generator=self.generator)
        for k in range(len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            dev_idx = idx.to(self.images.device)
            yield {"image": self.images[dev_idx], "mask": self.masks[dev_idx].long(),
                   "size": self.sizes[idx], "id": [self.ids[i] for i in idx.tolist()]}
