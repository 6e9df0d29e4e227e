"""SOLOv2's training loss (paper equations in `.spec`'s docstring).

``L = L_cate + lambda * L_mask``:

- ``L_cate`` = ``sum over cells and classes of FL(p, y) / (P + 1)``: the sigmoid focal loss
  (Lin et al. 2017, eq. 5, ``torchvision.ops.sigmoid_focal_loss``) of every grid cell of every
  level against its one-hot class (all zeros for background), normalised by the number ``P`` of
  positive cells in the batch plus one (the authors' code);
- ``L_mask`` = ``mean over the P positive cells of 1 - D(sigmoid(G_ij * F), target)``, the
  squared-denominator soft Dice (SOLO eq. 3, ``segwise.losses.soft_dice_loss(squared=True,
  scope="image")``: one Dice per positive cell), computed at the mask features' 1/4 scale
  against the soft targets of `assign_grid_targets`.

With no positive cell in the batch ``L_mask`` is an exact 0 that still reaches the kernel and
mask branches (``0 * sum``), so every parameter keeps a gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segwise.instance.methods.solov2.model import SOLOv2Model, flatten_levels, pad_to_divisor
from segwise.instance.methods.solov2.targets import GridTargets, assign_grid_targets

if TYPE_CHECKING:
    from segwise.instance.methods.solov2.options import SOLOv2Options

__all__ = ["grid_targets_for", "solov2_loss", "solov2_loss_terms"]

#: stride of the mask features (P2)
MASK_STRIDE = 4


def grid_targets_for(target: Mapping[str, Tensor], padded: tuple[int, int], *,
                     options: SOLOv2Options,
                     grids: Sequence[tuple[int, int]] | None = None) -> tuple[GridTargets, Tensor]:
    """Grid targets of one image, and which cells crowd regions would own.

    Args:
        target: ``{"masks": (K, H, W), "labels": (K,)}`` and optionally ``"crowd": bool (K,)``.
        padded: ``(H', W')`` of the padded batch (the masks are zero-padded to it).
        options: the resolved options (``scale_ranges`` set).
        grids: the ``(S_h, S_w)`` of each level (`SOLOv2Model.grid_shapes`); default
            ``options.grids`` (square).

    Returns:
        ``(targets, crowd_cells)``: the `GridTargets` of the non-crowd instances and a
        ``bool (T,)`` map of cells that only crowd regions would make positive.
    """
    masks = target["masks"]
    labels = target["labels"].long()
    h, w = masks.shape[-2:]
    masks = F.pad(masks.to(torch.uint8), (0, padded[1] - w, 0, padded[0] - h))
    crowd = target.get("crowd")
    crowd = (torch.zeros(len(labels), dtype=torch.bool, device=masks.device) if crowd is None
             else crowd.to(masks.device).bool())
    kwargs = {"grids": options.grids if grids is None else grids,
              "scale_ranges": options.scale_ranges,
              "center_sampling": options.center_sampling, "mask_stride": MASK_STRIDE}
    grid = assign_grid_targets(masks[~crowd], labels[~crowd], **kwargs)
    crowd_cells = torch.zeros_like(grid.categories, dtype=torch.bool)
    if crowd.any():
        crowd_grid = assign_grid_targets(masks[crowd], labels[crowd], **kwargs)
        crowd_cells[crowd_grid.positive_cells] = True
        crowd_cells &= grid.categories == 0
    return grid, crowd_cells


def solov2_loss_terms(categories: Sequence[Tensor], kernels: Sequence[Tensor],
                      mask_features: Tensor, grids: Sequence[GridTargets],
                      crowd_cells: Sequence[Tensor], *, options: SOLOv2Options,
                      ) -> dict[str, Tensor]:
    """The loss from raw outputs and per-image grid targets (the pure part of `solov2_loss`).

    Args:
        categories: per level ``(N, num_classes, S, S)`` logits.
        kernels: per level ``(N, E, S, S)`` dynamic kernels.
        mask_features: ``(N, E, H/4, W/4)``.
        grids: one `GridTargets` per image.
        crowd_cells: one ``bool (T,)`` per image (T cells over all levels): cells left out of
            the focal loss.
        options: the method's options (focal alpha/gamma, mask loss weight).

    Returns:
        ``{"category": L_cate, "mask": lambda * L_mask}``, scalar float32 each.
    """
    from torchvision.ops import sigmoid_focal_loss

    from segwise.losses.functional import soft_dice_loss

    logits = flatten_levels(categories).float()  # (N, T, C)
    c = logits.shape[-1]
    cls_target = torch.stack([g.categories for g in grids])  # (N, T), 0 = background
    onehot = F.one_hot(cls_target, c + 1)[..., 1:].to(logits.dtype)  # (N, T, C)
    focal = sigmoid_focal_loss(logits, onehot, alpha=options.focal_alpha,
                               gamma=options.focal_gamma, reduction="none")  # (N, T, C)
    valid = ~torch.stack(list(crowd_cells))  # (N, T)
    num_pos = sum(int(g.positive_cells.numel()) for g in grids)
    category = (focal * valid[..., None]).sum() / (num_pos + 1)

    flat_kernels = flatten_levels(kernels)  # (N, T, E)
    mask_logits, mask_targets = [], []
    for b, g in enumerate(grids):
        if g.positive_cells.numel() == 0:
            continue
        chosen = flat_kernels[b, g.positive_cells][None]  # (1, P_b, E)
        mask_logits.append(SOLOv2Model.masks_for(chosen, mask_features[b : b + 1])[0])
        mask_targets.append(g.masks[g.positive_instances])  # (P_b, h, w)
    if mask_logits:
        pred = torch.cat(mask_logits)[:, None].float()  # (P, 1, h, w)
        target = torch.cat(mask_targets)[:, None]  # (P, 1, h, w) soft targets in [0, 1]
        dice = soft_dice_loss(pred, target, task="binary", scope="image", squared=True)
    else:  # no instance in the batch: a zero that keeps the kernel/mask graph alive
        dice = 0.0 * (flat_kernels.sum() + mask_features.sum())
    return {"category": category, "mask": options.mask_loss_weight * dice}


def solov2_loss(model: nn.Module, images: Tensor, targets: Sequence[Mapping[str, Tensor]], *,
                options: SOLOv2Options) -> dict[str, Tensor]:
    """Forward the padded batch and return `solov2_loss_terms`.

    Args:
        model: a `SOLOv2Model`.
        images: ``(N, C, H, W)``, any H, W (padded here to ``model.divisor``).
        targets: one dict per image (masks ``(K, H, W)``, labels ``(K,)``, optional crowd).
        options: resolved options.
    """
    padded = pad_to_divisor(images, model.divisor)
    out = model(padded)
    size = (padded.shape[-2], padded.shape[-1])
    grids = [(int(sh), int(sw)) for sh, sw in model.grid_shapes(*size)]
    pairs = [grid_targets_for(t, size, options=options, grids=grids) for t in targets]
    return solov2_loss_terms(out.categories, out.kernels, out.mask_features,
                             [p[0] for p in pairs], [p[1] for p in pairs], options=options)
