"""Boxes of masks: the one torch implementation of the tight pixel-edge box of a binary mask.

It lives in ``segwise.data`` because the dataset item's ``"boxes"`` are made from the masks after
every transform (:func:`segwise.data.datasets.clean_instances`); instance methods (above this
floor) read it from here too. The numpy form for a label map is
``segwise.instance._arrays.boxes_from_label_map`` (torch-free, for ``InstancePrediction``).
"""

from __future__ import annotations

import torch

__all__ = ["boxes_from_masks"]


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight pixel-edge box of each mask: ``x1, y1, x2, y2`` with ``x2 = last column + 1``.

    Two ``any`` passes over the masks (occupied rows and columns) and an ``argmax`` from each
    end; about 3x faster than ``torchvision.ops.masks_to_boxes`` on dsb2018's items.

    Args:
        masks: ``(K, H, W)`` masks of any dtype, non-zero = inside.

    Returns:
        ``float32 (K, 4)`` on the masks' device; all zeros for an empty mask (so ``x2 > 0``
        exactly for the masks with a pixel).
    """
    if masks.ndim != 3:
        raise ValueError(f"masks has shape {tuple(masks.shape)}; expected (K, H, W)")
    k, h, w = masks.shape
    if masks.numel() == 0:
        return torch.zeros((k, 4), dtype=torch.float32, device=masks.device)
    rows = masks.any(dim=2).to(torch.uint8)  # (K, H): any pixel in the row (uint8: fast argmax)
    cols = masks.any(dim=1).to(torch.uint8)  # (K, W)
    y1, x1 = rows.argmax(dim=1), cols.argmax(dim=1)  # first occupied row / column
    y2, x2 = h - rows.flip(1).argmax(dim=1), w - cols.flip(1).argmax(dim=1)  # last + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1).to(torch.float32)
    return boxes * rows.any(dim=1, keepdim=True)  # an empty mask's argmax is 0: zero it
