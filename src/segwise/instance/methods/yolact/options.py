"""YOLACT's options value (``--model-option KEY=VALUE``), in its own module so that the
network, loss and decoding modules read it without importing the method object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from segwise._validation import as_enum, check_probability

__all__ = ["PAPER_ANCHOR_SIZES", "ClassLoss", "YOLACTOptions"]

#: anchor sizes of the paper's 550 px model on P3-P7 (used when no training data is at hand)
PAPER_ANCHOR_SIZES = (24.0, 48.0, 96.0, 192.0, 384.0)


class ClassLoss(str, Enum):
    """YOLACT's class loss: ``OHEM`` softmax cross-entropy with 3:1 hard negatives (the paper's)
    or sigmoid ``FOCAL`` loss (RetinaNet; the head then has no background column)."""

    OHEM = "ohem"
    FOCAL = "focal"


def _floats(value: Any, name: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)) or not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{name}={value!r}; expected a list of positive numbers, e.g. [1, 0.5, 2]")
    out = tuple(float(v) for v in value)
    if not out or min(out) <= 0:
        raise ValueError(f"{name}={value!r}; expected a non-empty list of positive numbers")
    return out


@dataclass(frozen=True)
class YOLACTOptions:
    """Options of ``yolact`` (``--model-option KEY=VALUE``; stored in checkpoints).

    Attributes:
        num_prototypes: ``k``, prototypes and coefficients per anchor (paper: 32).
        fpn_channels: channels of the FPN, protonet and head (paper: 256).
        anchor_sizes: one anchor size per level P3-P7 in px; None = derived from the training
            objects' sizes (`anchor_sizes_by_stride`), or the paper's 24 ... 384 without data.
        aspect_ratios: anchor ``height / width`` ratios, on every level (paper: 1, 1/2, 2).
        anchor_scales: multipliers of each level's anchor size, on every level (YOLACT: 1;
            YOLACT++ (Bolya et al., TPAMI 2020): 1, 2^(1/3), 2^(2/3)). Here 2^(-1/3), 1,
            2^(1/3): centred on the derived size, which is a median of the level's objects
            (dsb2018: objects >= 25 px without an anchor at IoU >= 0.5 fall from 56 % to 2 %;
            AP50 0.350 -> 0.366 after 200 steps, one seed, within seed noise;
            docs/benchmarks.md).
        class_loss: `ClassLoss` (paper: OHEM).
        negative_ratio: hard negatives per positive of the OHEM loss (paper: 3).
        positive_iou: anchor-box IoU at or above which an anchor is positive (paper: 0.5;
            0.4 here: on a stride-8 grid an object of 10-20 px rarely reaches 0.5 with any
            anchor, so 48 % of the dsb2018 nuclei had only the one anchor they claim, and its
            near-identical neighbours were mined as background; AP50 0.187 -> 0.350 at 200
            steps, docs/benchmarks.md).
        negative_iou: IoU below which an anchor is background (paper: 0.4; 0.3 here, the
            same 0.1 neutral band under ``positive_iou``).
        masks_to_train: at most this many positives per image get a mask loss (reference: 100).
        class_weight: weight of the class loss (reference: 1).
        box_weight: weight of the box loss (reference: 1.5).
        mask_weight: weight of the mask loss (reference: 6.125).
        mask_loss_stride: resolution of the mask loss in input pixels: 4 (the prototypes', the
            paper's), 2 or 1 (the assembled mask upsampled as in decoding first). 1 did not
            help on dsb2018 after 200 steps (SQ 0.723 vs 0.721, AP50 0.382 vs 0.413) and costs
            ~30 % more per step on the CPU.
        semantic_weight: weight of the auxiliary semantic loss (reference: 1; 0 disables it).
        score_threshold: decoding: class scores below it are dropped. 0.5, as Mask R-CNN's:
            segwise's DSB score, AP50 and PQ count every output instance (a low-score false
            positive costs as much as a confident one), unlike the ranked COCO AP the
            reference's 0.05 is tuned for (dsb2018 val crops after a short CPU run: AP50 0.21
            at 0.1, 0.47 at 0.5).
        top_k: decoding: candidates per class entering Fast NMS (reference: 200; 1000 here:
            with 9 anchors per cell a nucleus has ~12 candidates above the score threshold, and
            500 cut a 206-nucleus dsb2018 val image to 122 detections; on 16 val images AP50
            0.413 -> 0.418, PQ 0.377 -> 0.391, detections 42 -> 47 per image, at 4x the Fast
            NMS time, whose IoU matrix is ``top_k x top_k`` whatever the image).
        nms_iou: decoding: Fast NMS IoU threshold (reference: 0.5).
        max_detections: decoding: detections kept per image (reference: 100; 400 here, as
            Mask R-CNN's and SOLOv2's, for the densest DSB 2018 images).
        mask_threshold: decoding: mask probability above which a pixel is in the instance.
    """

    num_prototypes: int = 32
    fpn_channels: int = 256
    anchor_sizes: tuple[float, ...] | None = None
    aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    anchor_scales: tuple[float, ...] = (2 ** (-1 / 3), 1.0, 2 ** (1 / 3))
    class_loss: ClassLoss = ClassLoss.OHEM
    negative_ratio: float = 3.0
    positive_iou: float = 0.4
    negative_iou: float = 0.3
    masks_to_train: int = 100
    class_weight: float = 1.0
    box_weight: float = 1.5
    mask_weight: float = 6.125
    mask_loss_stride: int = 4
    semantic_weight: float = 1.0
    score_threshold: float = 0.5
    top_k: int = 1000
    nms_iou: float = 0.5
    max_detections: int = 400
    mask_threshold: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_loss", as_enum(self.class_loss, ClassLoss, "class_loss"))
        object.__setattr__(self, "aspect_ratios", _floats(self.aspect_ratios, "aspect_ratios"))
        object.__setattr__(self, "anchor_scales", _floats(self.anchor_scales, "anchor_scales"))
        if self.anchor_sizes is not None:
            sizes = _floats(self.anchor_sizes, "anchor_sizes")
            if len(sizes) != 5:
                raise ValueError(
                    f"anchor_sizes={self.anchor_sizes!r}; expected 5 sizes in px, one per FPN "
                    "level P3-P7 (or leave it unset to derive them from the data)"
                )
            object.__setattr__(self, "anchor_sizes", sizes)
        for name in ("num_prototypes", "fpn_channels", "masks_to_train", "top_k", "max_detections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}; expected an integer >= 1")
        for name in (
            "score_threshold", "nms_iou", "mask_threshold", "positive_iou", "negative_iou"
        ):
            check_probability(getattr(self, name), name)
        if self.mask_loss_stride not in (1, 2, 4):
            raise ValueError(
                f"mask_loss_stride={self.mask_loss_stride!r}; expected 4 (prototype "
                "resolution), 2 or 1 (input pixels)"
            )
        if self.negative_iou > self.positive_iou:
            raise ValueError(
                f"negative_iou={self.negative_iou!r} > positive_iou={self.positive_iou!r}; "
                "expected negative_iou <= positive_iou"
            )
        for name in ("negative_ratio", "class_weight", "box_weight", "mask_weight",
                     "semantic_weight"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected a value >= 0")
