"""YOLACT decoding: network outputs -> fixed-size detections with masks (traceable).

Per image (paper section 3.3 and the reference ``Detect`` + ``postprocess``):

1. class scores: softmax over ``C + 1`` without the background column (focal head: sigmoid);
2. boxes: SSD decoding of the deltas at the anchors (`segwise.instance.boxes.decode_boxes`),
   clipped to the image; a box whose centre lies outside the image (in the padding the network
   adds at the bottom/right, which no training crop had) or that the clipping leaves without
   area scores 0;
3. Fast NMS per class over the ``top_k`` best candidates, then the best ``max_detections``
   survivors of all classes (`segwise.instance.nms.multiclass_fast_nms`);
4. masks: ``sigmoid(prototypes x coefficients)`` (paper eq. 1) at stride 4, bilinearly upsampled
   to the padded input, cropped to the image and then to the detection's box (pixels whose
   centre is outside the box are 0; paper section 3.1 "Cropping").

Every shape is fixed by the options (no data-dependent sizes), so `YOLACTExport` traces to ONNX
with free height and width. Empty slots have score 0, label 0 and an all-zero mask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segwise.instance.boxes import decode_boxes
from segwise.instance.methods.yolact.model import PROTO_STRIDE
from segwise.instance.nms import multiclass_fast_nms

if TYPE_CHECKING:
    from segwise.instance.methods.yolact.options import YOLACTOptions

__all__ = ["YOLACTExport", "assemble_masks", "detect", "select_detections"]


def _gather(values: Tensor, index: Tensor) -> Tensor:
    """``values (N, A, X)``, ``index (N, D)`` -> ``(N, D, X)``."""
    return values.gather(1, index[..., None].expand(-1, -1, values.shape[-1]))


def _pixel_centres(
    height: int | Tensor, width: int | Tensor, like: Tensor
) -> tuple[Tensor, Tensor]:
    ys = torch.arange(height, device=like.device, dtype=like.dtype) + 0.5
    xs = torch.arange(width, device=like.device, dtype=like.dtype) + 0.5
    return ys, xs


def select_detections(
    outputs: dict[str, Tensor],
    *,
    height: int | Tensor,
    width: int | Tensor,
    options: YOLACTOptions,
    background_class: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Steps 1-3 of the module docstring: the detections, before their masks.

    Args:
        outputs: `YOLACTNet` outputs.
        height: ``H`` of the unpadded input.
        width: ``W`` of the unpadded input.
        options: ``score_threshold``, ``top_k``, ``nms_iou``, ``max_detections``.
        background_class: whether ``class_logits`` has a background column.

    Returns:
        ``scores (N, D)`` descending, ``labels (N, D) int64`` (0 = empty slot), ``coefficients
        (N, D, k)`` and ``boxes (N, D, 4)`` xyxy in pixels, ``D = options.max_detections``.
    """
    logits = outputs["class_logits"].float()
    probs = logits.softmax(-1)[..., 1:] if background_class else logits.sigmoid()  # (N, A, C)
    boxes = decode_boxes(outputs["box_deltas"].float(), outputs["anchors"])  # (N, A, 4)
    # limits from the pixel centres (not torch.tensor(width)): torch.export keeps H, W symbolic
    ys, xs = _pixel_centres(height, width, boxes)
    limit = torch.cat([xs[-1:], ys[-1:], xs[-1:], ys[-1:]]) + 0.5  # W, H, W, H
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # (N, A, 2) x, y before clipping
    in_image = ((centre >= 0) & (centre < limit[:2])).all(dim=-1)  # (N, A)
    boxes = torch.minimum(boxes.clamp(min=0), limit)
    # a box centred in the padding, or left without area by the clipping, is no detection
    has_area = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])  # (N, A)
    probs = probs * (has_area & in_image)[..., None].to(probs.dtype)
    scores, labels, index = multiclass_fast_nms(
        boxes, probs,
        iou_threshold=options.nms_iou, top_k=options.top_k,
        max_detections=options.max_detections, score_threshold=options.score_threshold,
    )  # fmt: skip  (N, D) each
    return scores, labels, _gather(outputs["coefficients"].float(), index), _gather(boxes, index)


def assemble_masks(
    prototypes: Tensor,
    coefficients: Tensor,
    boxes: Tensor,
    *,
    height: int | Tensor,
    width: int | Tensor,
) -> Tensor:
    """Step 4 of the module docstring: ``sigmoid(prototypes x coefficients)``, upsampled, cropped.

    Args:
        prototypes: ``(N, k, h, w)`` at stride 4 of the padded input.
        coefficients: ``(N, D, k)``.
        boxes: ``(N, D, 4)`` xyxy in pixels.
        height: ``H`` of the unpadded input.
        width: ``W`` of the unpadded input.

    Returns:
        ``(N, D, H, W)`` float32 probabilities, 0 where the pixel centre is outside the box.
    """
    protos = prototypes.float()
    masks = torch.einsum("ndk,nkhw->ndhw", coefficients.float(), protos).sigmoid()  # eq. 1
    padded_h, padded_w = protos.shape[-2] * PROTO_STRIDE, protos.shape[-1] * PROTO_STRIDE
    masks = F.interpolate(
        masks, size=(padded_h, padded_w), mode="bilinear", align_corners=False
    )[..., :height, :width]
    ys, xs = _pixel_centres(height, width, masks)
    b = boxes.float()[..., None, None, :]  # (N, D, 1, 1, 4)
    inside = (xs >= b[..., 0]) & (xs < b[..., 2])  # (N, D, 1, W)
    inside = inside & (ys[:, None] >= b[..., 1]) & (ys[:, None] < b[..., 3])  # (N, D, H, W)
    return masks * inside.to(masks.dtype)


def detect(
    outputs: dict[str, Tensor],
    *,
    height: int | Tensor,
    width: int | Tensor,
    options: YOLACTOptions,
    background_class: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Decode a batch with fixed-size outputs (`select_detections`, then `assemble_masks`).

    Returns:
        ``scores (N, D)`` descending, ``labels (N, D) int64`` (0 = empty slot) and ``masks
        (N, D, H, W)`` float32 probabilities (0 outside the box and in empty slots),
        ``D = options.max_detections``.
    """
    scores, labels, coefs, boxes = select_detections(
        outputs, height=height, width=width, options=options, background_class=background_class
    )
    masks = assemble_masks(outputs["prototypes"], coefs, boxes, height=height, width=width)
    return scores, labels, masks * (scores > 0)[..., None, None].to(masks.dtype)


class YOLACTExport(nn.Module):
    """``images (N, C, H, W) -> (scores (N, D), labels (N, D), masks (N, D, H, W))``: a
    `YOLACTNet` with `detect` behind it, for ``torch.onnx.export`` (module docstring).

    ``masks`` are probabilities; threshold them at ``options.mask_threshold``.
    """

    def __init__(self, model: nn.Module, *, options: YOLACTOptions) -> None:
        super().__init__()
        self.model = model
        self.options = options
        self.background_class = model.background_class

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """See the class docstring."""
        return detect(
            self.model(images),
            height=images.shape[-2],
            width=images.shape[-1],
            options=self.options,
            background_class=self.background_class,
        )
