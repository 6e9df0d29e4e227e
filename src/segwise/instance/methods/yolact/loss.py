"""YOLACT's training losses (Bolya et al., ICCV 2019), as pure functions of the network outputs.

``L = w_cls * L_cls + w_box * L_box + w_mask * L_mask + w_sem * L_sem`` with the reference
weights 1, 1.5, 6.125, 1 (the released code's ``conf_alpha``, ``bbox_alpha``, ``mask_alpha``,
``semantic_segmentation_alpha``). ``P`` below is the number of positive anchors in the batch
(`segwise.instance.boxes.match_anchors`; at least 1).

- **L_cls** (section 3, "as in SSD"): softmax cross-entropy over ``C + 1`` classes on the
  positive anchors and the hardest background anchors, ``negative_ratio`` (3) negatives per
  positive per image (online hard example mining, SSD section 2.2), summed and divided by
  ``P``. segwise mines ``negative_ratio * max(P_image, 1)`` negatives, so an image without
  objects still teaches background (the reference mines none there). Focal option: sigmoid focal
  loss (RetinaNet, Lin et al. 2017b, eq. 5, ``alpha = 0.25, gamma = 2``) over all non-neutral
  anchors and ``C`` classes, divided by ``P``.
- **L_box** (SSD eq. 2): smooth-L1 (``beta = 1``) between the positives' deltas and the SSD
  coding of their matched boxes (variances 0.1 / 0.2), summed and divided by ``P``.
- **L_mask** (section 3.1, "Mask Assembly"): the assembled mask ``M = sigmoid(P C^T)`` of each
  positive (prototypes ``P``, its coefficients ``C``, paper eq. 1) against its ground-truth mask
  at prototype resolution, per-pixel binary cross-entropy summed over the pixels inside the
  ground-truth box (the paper crops with the ground-truth box in training) and divided by that
  box's area "to preserve small objects", averaged over the (at most ``masks_to_train``)
  positives trained. The loss is taken at stride ``mask_loss_stride`` (4: the prototypes' own
  resolution, the paper's; 2 or 1: the assembled logits bilinearly upsampled first, as decoding
  upsamples the masks, so that the loss sees the shape that is thresholded). The box area is
  counted in pixels of that stride (those whose centre is in the box, at least 1). The target
  is the fraction of each stride x stride cell the object covers (the reference thresholds a
  bilinear resize at 0.5; a soft target keeps the ~10 px nuclei of dsb2018 from vanishing),
  the binary mask itself at stride 1.
- **L_sem** (section 3.4): per-class sigmoid BCE of the semantic head on P3 against the union
  of each class's masks (cell-coverage fraction at stride 8), averaged over pixels, summed
  over classes, averaged over images.

Crowd regions (``"crowd"`` True) are not instances: anchors overlapping one (IoU >=
``negative_iou``) that are not positive become neutral, and they are left out of every target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_iou, sigmoid_focal_loss

from segwise.instance.boxes import BACKGROUND, NEUTRAL, encode_boxes, match_anchors
from segwise.instance.methods.yolact.model import LEVELS, PROTO_STRIDE

if TYPE_CHECKING:
    from segwise.instance.methods.yolact.options import YOLACTOptions

__all__ = ["anchor_targets", "mask_loss", "ohem_class_loss", "yolact_loss"]

#: stride of the semantic head (P3)
SEM_STRIDE = 2 ** LEVELS[0]


def anchor_targets(
    anchors: Tensor,
    target: Mapping[str, Tensor],
    *,
    positive_iou: float,
    negative_iou: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Class target of each anchor and the (non-crowd) instances they refer to.

    Args:
        anchors: ``(A, 4)`` xyxy.
        target: one image's instances (``"boxes" (K, 4)``, ``"labels" (K,)``, optional
            ``"crowd" bool (K,)``).
        positive_iou: see `match_anchors`.
        negative_iou: see `match_anchors`.

    Returns:
        ``matched (A,)`` index into the kept instances (`BACKGROUND`/`NEUTRAL` otherwise),
        ``classes (A,) int64``: the label for a positive, 0 for background, -1 for neutral, and
        ``kept (K,) bool``: the non-crowd instances.
    """
    boxes = target["boxes"].to(anchors)
    crowd = target.get("crowd")
    kept = (
        torch.ones(boxes.shape[0], dtype=torch.bool, device=anchors.device)
        if crowd is None
        else ~crowd.to(device=anchors.device, dtype=torch.bool)
    )
    matched = match_anchors(
        anchors, boxes[kept], positive_iou=positive_iou, negative_iou=negative_iou
    )
    if (~kept).any():
        near_crowd = box_iou(boxes[~kept], anchors).amax(dim=0) >= negative_iou
        matched = torch.where(near_crowd & (matched < 0), NEUTRAL, matched)
    labels = target["labels"].to(anchors.device)[kept].long()
    classes = torch.where(
        matched >= 0,
        labels[matched.clamp(min=0)] if labels.numel() else torch.zeros_like(matched),
        torch.where(matched == BACKGROUND, 0, -1),
    )
    return matched, classes, kept


def ohem_class_loss(logits: Tensor, classes: Tensor, *, negative_ratio: float) -> Tensor:
    """Summed softmax cross-entropy on positives and mined hard negatives (one image).

    Args:
        logits: ``(A, C + 1)`` class scores, column 0 background.
        classes: ``(A,)`` 0 background, ``1..C`` positive, -1 neutral.
        negative_ratio: negatives kept per positive (at least ``negative_ratio`` kept when the
            image has no positive).

    Returns:
        Scalar: the sum (not the mean) of the selected anchors' cross-entropy.
    """
    ce = F.cross_entropy(logits, classes.clamp(min=0), reduction="none")  # (A,)
    positive = classes > 0
    negative = classes == 0
    num_neg = min(
        int(negative_ratio * max(int(positive.sum()), 1)), int(negative.sum())
    )
    # background loss ranks the negatives; positives and neutrals are never mined
    mining = torch.where(negative, ce.detach(), torch.full_like(ce, -1.0))
    hard = torch.zeros_like(positive)
    if num_neg:
        hard[mining.topk(num_neg).indices] = True
    return ce[positive | hard].sum()


def mask_loss(
    prototypes: Tensor, coefficients: Tensor, masks: Tensor, boxes: Tensor, *, stride: int = 4
) -> Tensor:
    """Box-cropped, box-area-normalised BCE of assembled masks, summed over masks (one image).

    Args:
        prototypes: ``(k, h, w)`` at stride 4 of the padded image.
        coefficients: ``(P, k)`` of the positives trained.
        masks: ``(P, h * 4 / stride, w * 4 / stride)`` float target in [0, 1] at ``stride``.
        boxes: ``(P, 4)`` xyxy ground-truth boxes in input pixels.
        stride: resolution of the loss (4, 2 or 1); below 4 the assembled logits are
            upsampled bilinearly (``align_corners=False``, as `decode.assemble_masks`).

    Returns:
        Scalar: ``sum_p sum_{pixels in box_p} BCE / |box_p|`` (module docstring, L_mask).
    """
    logits = torch.einsum("pk,khw->phw", coefficients, prototypes)  # M = sigmoid(P C^T), eq. 1
    if stride != PROTO_STRIDE:
        logits = F.interpolate(
            logits[None], scale_factor=PROTO_STRIDE // stride, mode="bilinear",
            align_corners=False,
        )[0]  # fmt: skip
    h, w = logits.shape[-2:]
    ys = (torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5) * stride
    xs = (torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5) * stride
    inside = (
        (xs[None, None, :] >= boxes[:, 0, None, None])
        & (xs[None, None, :] < boxes[:, 2, None, None])
        & (ys[None, :, None] >= boxes[:, 1, None, None])
        & (ys[None, :, None] < boxes[:, 3, None, None])
    ).to(logits.dtype)  # (P, h, w)
    bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    return ((bce * inside).sum(dim=(1, 2)) / inside.sum(dim=(1, 2)).clamp(min=1)).sum()


def _coverage(masks: Tensor, size: tuple[int, int], stride: int) -> Tensor:
    """``(K, H, W)`` binary masks -> ``(K, H'/s, W'/s)`` covered fraction of each cell (padded)."""
    hp, wp = size
    padded = F.pad(masks.float(), (0, wp - masks.shape[-1], 0, hp - masks.shape[-2]))
    if masks.shape[0] == 0:
        return padded[:, ::stride, ::stride]
    return F.avg_pool2d(padded[None], stride)[0]


def yolact_loss(
    outputs: Mapping[str, Tensor],
    targets: Sequence[Mapping[str, Tensor]],
    *,
    options: YOLACTOptions,
) -> dict[str, Tensor]:
    """YOLACT's four loss terms for one batch (module docstring).

    Args:
        outputs: `YOLACTNet` outputs in training mode.
        targets: one dict per image: ``"boxes" (K, 4)`` xyxy px, ``"labels" (K,)`` in
            ``1..C``, ``"masks" (K, H, W)`` uint8 at the input size, optional ``"crowd"``.
        options: the method options (thresholds, class loss, weights, ``masks_to_train``).

    Returns:
        ``{"loss_class", "loss_box", "loss_mask", "loss_semantic"}`` weighted scalars.
    """
    from segwise.instance.methods.yolact.options import ClassLoss

    anchors = outputs["anchors"]
    protos = outputs["prototypes"]  # (N, k, h, w)
    proto_size = protos.shape[-2] * PROTO_STRIDE, protos.shape[-1] * PROTO_STRIDE
    sem_logits = outputs["semantic_logits"]  # (N, C, H'/8, W'/8)
    num_classes = sem_logits.shape[1]
    cls_sum = box_sum = mask_sum = sem_sum = protos.new_zeros(())
    num_pos, num_masks = 0, 0
    for i, target in enumerate(targets):
        matched, classes, kept = anchor_targets(
            anchors, target,
            positive_iou=options.positive_iou, negative_iou=options.negative_iou,
        )  # fmt: skip
        positive = matched >= 0
        num_pos += int(positive.sum())
        logits = outputs["class_logits"][i]
        if options.class_loss is ClassLoss.OHEM:
            cls_sum = cls_sum + ohem_class_loss(
                logits, classes, negative_ratio=options.negative_ratio
            )
        else:
            valid = classes >= 0
            onehot = F.one_hot(classes.clamp(min=0), num_classes + 1)[:, 1:].to(logits)
            cls_sum = cls_sum + sigmoid_focal_loss(logits[valid], onehot[valid], reduction="sum")
        boxes = target["boxes"].to(anchors)[kept]
        masks = target["masks"].to(anchors.device)[kept]
        labels = target["labels"].to(anchors.device)[kept].long()
        pos_idx = positive.nonzero().squeeze(1)
        if pos_idx.numel():
            gt = matched[pos_idx]
            box_sum = box_sum + F.smooth_l1_loss(
                outputs["box_deltas"][i, pos_idx],
                encode_boxes(boxes[gt], anchors[pos_idx]),
                reduction="sum",
            )
            if pos_idx.numel() > options.masks_to_train:  # the reference samples at random
                pos_idx = pos_idx[torch.randperm(pos_idx.numel())[: options.masks_to_train]]
                gt = matched[pos_idx]
            stride = options.mask_loss_stride
            target_masks = _coverage(masks, proto_size, stride)  # (K, h', w') at the stride
            mask_sum = mask_sum + mask_loss(
                protos[i], outputs["coefficients"][i, pos_idx], target_masks[gt], boxes[gt],
                stride=stride,
            )  # fmt: skip
            num_masks += pos_idx.numel()
        sem_h, sem_w = sem_logits.shape[-2:]
        onehot = F.one_hot(labels - 1, num_classes).float()  # (K, C)
        class_masks = torch.einsum("kc,khw->chw", onehot, masks.float()).clamp(max=1)
        sem_target = _coverage(class_masks, (sem_h * SEM_STRIDE, sem_w * SEM_STRIDE), SEM_STRIDE)
        sem_sum = sem_sum + F.binary_cross_entropy_with_logits(
            sem_logits[i], sem_target, reduction="none"
        ).mean(dim=(1, 2)).sum()
    # keep every head in the graph when a batch has no positive (zero, finite gradients)
    # (one element each: a sum over a half-precision map could overflow to inf, and 0 * inf)
    tie = 0.0 * sum(
        t.reshape(-1)[0].float() for t in (outputs["coefficients"], protos, outputs["box_deltas"])
    )
    return {
        "loss_class": options.class_weight * cls_sum / max(num_pos, 1),
        "loss_box": options.box_weight * box_sum / max(num_pos, 1) + tie,
        "loss_mask": options.mask_weight * mask_sum / max(num_masks, 1),
        "loss_semantic": options.semantic_weight * sem_sum / len(targets),
    }
