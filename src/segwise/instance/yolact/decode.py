"""YOLACT decoding: network outputs -> fixed-size detections with masks (traceable).

Per image (paper section 3.3 and the reference ``Detect`` + ``postprocess``):

1. class scores: softmax over ``C + 1`` without the background column (focal head: sigmoid);
2. boxes: SSD decoding of the deltas at the anchors (`segwise.instance.boxes.decode_boxes`),
   clipped to the image (a box left without area, e.g. in the padding, scores 0);
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
from segwise.instance.nms import multiclass_fast_nms
from segwise.instance.yolact.model import PROTO_STRIDE

if TYPE_CHECKING:
    from segwise.instance.methods.yolact import YOLACTOptions

__all__ = ["YOLACTExport", "detect"]


def _gather(values: Tensor, index: Tensor) -> Tensor:
    """``values (N, A, X)``, ``index (N, D)`` -> ``(N, D, X)``."""
    return values.gather(1, index[..., None].expand(-1, -1, values.shape[-1]))


def detect(
    outputs: dict[str, Tensor],
    *,
    height: int | Tensor,
    width: int | Tensor,
    options: YOLACTOptions,
    background_class: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Decode a batch (module docstring).

    Args:
        outputs: `YOLACTNet` outputs.
        height: ``H`` of the unpadded input.
        width: ``W`` of the unpadded input.
        options: ``score_threshold``, ``top_k``, ``nms_iou``, ``max_detections``.
        background_class: whether ``class_logits`` has a background column.

    Returns:
        ``scores (N, D)`` descending, ``labels (N, D) int64`` (0 = empty slot) and ``masks
        (N, D, H, W)`` float32 probabilities (0 outside the box and in empty slots),
        ``D = options.max_detections``.
    """
    logits = outputs["class_logits"].float()
    probs = logits.softmax(-1)[..., 1:] if background_class else logits.sigmoid()  # (N, A, C)
    boxes = decode_boxes(outputs["box_deltas"].float(), outputs["anchors"])  # (N, A, 4)
    # pixel centres; the limits are taken from them (not torch.tensor(width)), so that
    # torch.export keeps H and W symbolic
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype) + 0.5
    limit = torch.cat([xs[-1:], ys[-1:], xs[-1:], ys[-1:]]) + 0.5  # W, H, W, H
    boxes = torch.minimum(boxes.clamp(min=0), limit)
    # a box left without area by the clipping (an anchor in the padding) is no detection
    has_area = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])  # (N, A)
    probs = probs * has_area[..., None].to(probs.dtype)
    scores, labels, index = multiclass_fast_nms(
        boxes, probs,
        iou_threshold=options.nms_iou, top_k=options.top_k,
        max_detections=options.max_detections, score_threshold=options.score_threshold,
    )  # fmt: skip  (N, D) each
    coefs = _gather(outputs["coefficients"].float(), index)  # (N, D, k)
    det_boxes = _gather(boxes, index)  # (N, D, 4)
    protos = outputs["prototypes"].float()  # (N, k, h, w)
    masks = torch.einsum("ndk,nkhw->ndhw", coefs, protos).sigmoid()
    padded_h, padded_w = protos.shape[-2] * PROTO_STRIDE, protos.shape[-1] * PROTO_STRIDE
    masks = F.interpolate(
        masks, size=(padded_h, padded_w), mode="bilinear", align_corners=False
    )[..., :height, :width]
    b = det_boxes[..., None, None, :]  # (N, D, 1, 1, 4)
    inside = (xs >= b[..., 0]) & (xs < b[..., 2])  # (N, D, 1, W)
    inside = inside & (ys[:, None] >= b[..., 1]) & (ys[:, None] < b[..., 3])  # (N, D, H, W)
    present = (scores > 0)[..., None, None]
    return scores, labels, masks * (inside & present).to(masks.dtype)


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
