"""Datasets yielding the Dataset item of ``docs/contracts.md``, and the reading helpers that
prediction shares with training (:func:`normalize_image`, :func:`read_mask`).

Pipeline of one item: read image -> ``(C, H, W)``, ``uint8`` for 8-bit files (else float in
[0, 1]) -> ``transform`` (geometry and colour, image and mask together) -> float, normalised
with ``info.mean``/``info.std``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from segwise.data.formats import read_image, to_unit_float
from segwise.data.info import DataInfo, Sample
from segwise.data.masks import mask_kind_spec
from segwise.data.masks.base import InstanceKindSpec

__all__ = [
    "InstanceDataset",
    "SegmentationDataset",
    "clean_instances",
    "image_to_tensor",
    "nonfinite_to_mean",
    "normalize_image",
    "normalize_tensor",
    "read_mask",
]


def image_to_tensor(array: np.ndarray, info: DataInfo, *, source: str | Path = "<array>",
                    keep_uint8: bool = False) -> torch.Tensor:
    """An image ``(H, W, C)`` (any dtype) as ``float32 (C, H, W)`` in [0, 1], channels matched.

    A grayscale image is repeated to 3 channels when ``info.in_channels == 3``. With
    ``keep_uint8`` an 8-bit image stays ``uint8 (C, H, W)`` in [0, 255], a view of its
    ``(H, W, C)`` memory (what the transforms warp without copying).

    Raises:
        ValueError: naming ``source`` when the channel count does not match ``info``.
    """
    if array.ndim == 2:
        array = array[..., None]
    arr = array if keep_uint8 and array.dtype == np.uint8 else to_unit_float(array)
    c = arr.shape[-1]
    if c != info.in_channels:
        if c == 1 and info.in_channels == 3:
            arr = np.repeat(arr, 3, axis=-1)
        elif c == 4 and info.in_channels == 3:
            arr = arr[..., :3]
        else:
            raise ValueError(
                f"image {source} has {c} channels but the model expects {info.in_channels}; "
                "convert the image"
            )
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def normalize_tensor(image: torch.Tensor, info: DataInfo) -> torch.Tensor:
    """``(C, H, W)`` or ``(N, C, H, W)`` float in [0, 1] -> ``(x - mean) / std`` per channel.

    A ``uint8`` image (``[0, 255]``) is scaled to [0, 1] first (``x / 255`` in float32, as
    :func:`segwise.data.formats.to_unit_float`): conversion and normalisation in one place.
    """
    if image.dtype == torch.uint8:
        if image.ndim == 3 and image.device.type == "cpu":
            from segwise.data.photometric import normalize_uint8

            return normalize_uint8(image, info.mean, info.std)  # one lookup, same values
        image = image.to(torch.float32) / 255.0
    shape = (-1, 1, 1)
    mean = torch.tensor(info.mean, dtype=image.dtype, device=image.device).view(shape)
    std = torch.tensor(info.std, dtype=image.dtype, device=image.device).view(shape)
    return (image - mean) / std


def normalize_image(array: np.ndarray, info: DataInfo) -> torch.Tensor:
    """The normalisation used by training and prediction alike.

    Args:
        array: an image ``(H, W, C)`` or ``(H, W)`` as returned by :func:`read_image`.
        info: the dataset's :class:`DataInfo` (from the checkpoint when predicting).

    Returns:
        ``float32 (C, H, W)``: scaled to [0, 1] by the dtype's range, then per-channel
        ``(x - info.mean) / info.std``.
    """
    image, _ = nonfinite_to_mean(image_to_tensor(array, info, keep_uint8=True), info)
    return normalize_tensor(image, info)


def nonfinite_to_mean(image: torch.Tensor, info: DataInfo
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """NaN / +-inf pixels of a float image read as the channel mean (0 after normalisation).

    Discovery refuses such pixels unless ``nonfinite="ignore"`` was chosen
    (:class:`~segwise.data.formats.NonFinite`); this is how they are read then, by training and
    prediction alike.

    Args:
        image: ``(C, H, W)`` on the [0, 1] scale of :func:`image_to_tensor` (``uint8`` images
            cannot hold NaN and are returned unchanged).
        info: gives the per-channel ``mean``.

    Returns:
        The image (a new tensor when pixels were replaced) and ``bool (H, W)``, True where a
        channel was not finite, or ``None`` when every pixel is finite.
    """
    if not image.is_floating_point():
        return image, None
    bad = ~torch.isfinite(image).all(dim=0)
    if not bool(bad.any()):
        return image, None
    mean = torch.tensor(info.mean, dtype=image.dtype).view(-1, 1, 1)
    return torch.where(bad, mean, image), bad


def read_mask(path: str | Path, info: DataInfo, *, image_name: str | None = None) -> np.ndarray:
    """Read a mask file as the item's target.

    Args:
        path: the mask file (a folder of annotators' masks for soft labels; the JSON file for
            COCO, together with ``image_name``).
        info: says how the file encodes labels (``info.mask_kind``).
        image_name: the image's file name, for COCO only.

    Returns:
        ``int64 (H, W)`` class indices in ``[0, num_classes)`` or ``ignore_index`` (COCO crowd
        regions: ``info.labels.pad_value``, ignored); for soft masks ``float32 (K, H, W)`` in
        [0, 1].

    Raises:
        ValueError: naming the file and the bad values.
    """
    path = Path(path)
    return mask_kind_spec(info.mask_kind).read(path, info.labels, image_name=image_name)


class SegmentationDataset(torch.utils.data.Dataset):
    """Image/mask pairs as Dataset items (``image``, ``mask``, ``id``; see docs/contracts.md).

    Args:
        samples: the pairs, e.g. ``discover_dataset(root).train``.
        info: the dataset's :class:`DataInfo` (mask kind, classes, normalisation).
        transform: a callable on the item ``{"image": tv_tensors.Image (C, H, W), "mask":
            tv_tensors.Mask, "id": str, ...}`` (e.g. :func:`train_transforms`), the image
            ``uint8`` in [0, 255] for 8-bit files, else float in [0, 1] (torchvision's
            convention); conversion to float and normalisation happen after it.
        cache: keep decoded images and masks in memory (for small datasets; each worker
            process holds its own copy).
        instances: also yield the Instance item ``"instances"`` (masks, labels, boxes, ids;
            for COCO data also ``"crowd": bool (K,)``, ``iscrowd``: crowd regions are in the
            item flagged, and their pixels are ``info.labels.pad_value`` in ``"mask"``).
        normalize: False leaves the image as the transform returns it (``uint8`` for 8-bit
            files), for augmentation on the training device
            (:class:`segwise.data.device_augment.DeviceAugment` normalises).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        info: DataInfo,
        *,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache: bool = False,
        instances: bool = False,
        normalize: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.normalize = normalize
        self.info = info
        self.transform = transform
        self.cache = cache
        self.instances = instances
        self._kind = mask_kind_spec(info.mask_kind)
        if instances and not self._kind.has_instances:
            raise ValueError(
                f"instances=True needs instance masks (mask_kind 'instance' or 'coco'), but the "
                f"data's mask_kind is {info.mask_kind.value!r}"
            )
        self._cache: dict[int, tuple[torch.Tensor, np.ndarray, dict | None]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, i: int) -> tuple[torch.Tensor, np.ndarray, dict | None]:
        if i in self._cache:
            return self._cache[i]
        s = self.samples[i]
        image = image_to_tensor(read_image(s.image_path), self.info, source=s.image_path,
                                keep_uint8=True)
        image, bad = nonfinite_to_mean(image, self.info)
        if s.mask_path is None:
            raise ValueError(f"sample {s.id} ({s.image_path}) has no mask")
        inst = None
        if self.instances:
            inst, mask = cast(InstanceKindSpec, self._kind).read_instances(
                s.mask_path, self.info.labels, image_name=s.image_path.name)
        else:
            mask = self._kind.read(s.mask_path, self.info.labels, image_name=s.image_path.name)
        if tuple(mask.shape[-2:]) != tuple(image.shape[-2:]):
            raise ValueError(
                f"mask {s.mask_path} is {tuple(mask.shape[-2:])} but image {s.image_path} is "
                f"{tuple(image.shape[-2:])}; re-export the mask at the image's size"
            )
        if bad is not None and not np.issubdtype(mask.dtype, np.floating):
            # pixels that were NaN / inf (nonfinite="ignore"): left out of loss and metrics
            mask = np.where(bad.numpy(), np.int64(self.info.labels.pad_value), mask)
        if self.cache:
            self._cache[i] = (image, mask, inst)
        return image, mask, inst

    def __getitem__(self, i: int) -> dict[str, Any]:
        threads = torch.get_num_threads()
        if threads == 1 or torch.utils.data.get_worker_info() is not None:
            return self._item(i)
        # In the main process (workers=0): per-image ops are small, and intra-op threads
        # competing for busy CPUs made them 4-9x slower (docs/benchmarks.md, Data). Run them
        # on one thread and give the model its threads back afterwards.
        torch.set_num_threads(1)
        try:
            return self._item(i)
        finally:
            torch.set_num_threads(threads)

    def _item(self, i: int) -> dict[str, Any]:
        from torchvision import tv_tensors

        from segwise.data.transforms import InstanceMasks

        image, mask, inst = self._load(i)
        h, w = image.shape[-2:]
        item: dict[str, Any] = {
            "image": tv_tensors.Image(image.clone() if self.cache else image),
            "mask": tv_tensors.Mask(torch.from_numpy(np.array(mask, copy=True))),
            "id": self.samples[i].id,
        }
        if inst is not None:
            item["instances"] = {
                "masks": InstanceMasks(torch.from_numpy(inst["masks"].copy())),
                "labels": torch.from_numpy(inst["labels"].copy()),
                "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(inst["boxes"].copy()),
                                                  format="XYXY", canvas_size=(h, w)),
                "ids": torch.from_numpy(inst["ids"].copy()),
            }
            if "crowd" in inst:
                item["instances"]["crowd"] = torch.from_numpy(inst["crowd"].copy())
        if self.transform is not None:
            item = self.transform(item)
        item["image"] = item["image"].as_subclass(torch.Tensor)
        if self.normalize:
            item["image"] = normalize_tensor(item["image"], self.info)
        item["mask"] = item["mask"].as_subclass(torch.Tensor)
        if "instances" in item:
            item["instances"] = clean_instances(item["instances"])
        return item


def clean_instances(inst: dict[str, Any]) -> dict[str, torch.Tensor]:
    """An item's ``"instances"`` made ready after augmentation: the one place that cleans them.

    Instances a crop or warp removed entirely are dropped, the boxes are recomputed from the
    masks (:func:`segwise.data.boxes.boxes_from_masks`, pixel-edge ``x1, y1, x2, y2``), and the
    ``"crowd"`` flags (COCO ``iscrowd``) follow the instances kept. Every dataset item goes
    through it once (:class:`SegmentationDataset`); training, evaluation and the instance
    methods read its output as is. Call it on items built by hand.

    Args:
        inst: ``{"masks": (K, H, W) 0/1, "labels": int64 (K,), "ids": int64 (K,)}`` and
            optionally ``"crowd": bool (K,)``; tensors or tv_tensors (``"boxes"`` is ignored).

    Returns:
        Plain tensors: ``masks uint8 (K', H, W)``, ``labels``, ``boxes float32 (K', 4)``,
        ``ids`` and, when given, ``crowd bool (K',)``.
    """
    from segwise.data.boxes import boxes_from_masks

    masks = torch.as_tensor(inst["masks"]).as_subclass(torch.Tensor).to(torch.uint8)
    boxes = boxes_from_masks(masks)
    keep = boxes[:, 2] > 0  # an empty mask has a zero box
    everything = bool(keep.all())
    if not everything:
        masks, boxes = masks[keep], boxes[keep]
    out = {"masks": masks, "labels": torch.as_tensor(inst["labels"])[keep], "boxes": boxes,
           "ids": torch.as_tensor(inst["ids"])[keep]}
    if "crowd" in inst:
        out["crowd"] = torch.as_tensor(inst["crowd"]).as_subclass(torch.Tensor).to(torch.bool)[keep]
    return out


class InstanceDataset(SegmentationDataset):
    """:class:`SegmentationDataset` with ``instances=True`` (a named shortcut, same behaviour)."""

    def __init__(self, samples: Sequence[Sample], info: DataInfo, *,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 cache: bool = False) -> None:
        super().__init__(samples, info, transform=transform, cache=cache, instances=True)
