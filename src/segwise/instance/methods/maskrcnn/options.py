"""Options of ``maskrcnn`` and the anchors it derives from the training objects.

Kept apart from the method object (`.spec`) so that the builders (`.model`) read the anchor
defaults and pyramid levels without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from segwise._validation import check_probability

__all__ = [
    "COCO_NUM_CLASSES",
    "DEFAULT_ANCHOR_SIZES",
    "DEFAULT_ASPECT_RATIOS",
    "DEFAULT_ENCODER",
    "LEVELS",
    "TV_ENCODER",
    "MaskRCNNOptions",
    "derive_anchors",
]

#: encoder name of torchvision's own ResNet-50-FPN v2 layout (the COCO checkpoint's)
TV_ENCODER = "tv_resnet50_fpn_v2"
#: default encoder of the method
DEFAULT_ENCODER = "resnet50"


def _floats(value: Any, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}={value!r}; expected a list of numbers, e.g. [8, 16, 32]"
        ) from None
    if not out or min(out) <= 0:
        raise ValueError(f"{name}={value!r}; expected a non-empty list of positive numbers")
    return out


def _pair(value: Any, name: str) -> tuple[int, int]:
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name}={value!r}; expected [train, test], two ints >= 1")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class MaskRCNNOptions:
    """Options of ``maskrcnn`` (``--model-option KEY=VALUE``; stored in checkpoints).

    Attributes:
        anchor_sizes: five anchor sizes in px, one per level P2..P6; None derives them from
            the training objects (`derive_anchors`).
        aspect_ratios: anchor ratios height / width on every level; None derives three.
        fpn_channels: channels of the FPN levels.
        trainable_backbone_layers: ``tv_resnet50_fpn_v2`` with pretrained weights only: ResNet
            stages to train (0-5; torchvision's default 3).
        box_detections_per_img: at most this many detections per image (DSB 2018 has up to
            375 nuclei in an image).
        rpn_pre_nms_top_n: ``[train, test]`` proposals per level before NMS.
        rpn_post_nms_top_n: ``[train, test]`` proposals kept after NMS.
        box_batch_size_per_image: RoIs sampled per image for the box / mask losses.
        box_score_thresh: detections below this score are dropped inside the model.
        score_threshold: detections below this score are not output as instances.
        mask_threshold: mask probability above which a pixel belongs to a detection.
    """

    anchor_sizes: tuple[float, ...] | None = None
    aspect_ratios: tuple[float, ...] | None = None
    fpn_channels: int = 256
    trainable_backbone_layers: int | None = None
    box_detections_per_img: int = 400
    rpn_pre_nms_top_n: tuple[int, int] = (1000, 1000)
    rpn_post_nms_top_n: tuple[int, int] = (500, 500)
    box_batch_size_per_image: int = 256
    box_score_thresh: float = 0.05
    score_threshold: float = 0.5
    mask_threshold: float = 0.5

    def __post_init__(self) -> None:
        sizes = _floats(self.anchor_sizes, "anchor_sizes")
        if sizes is not None and len(sizes) != 5:
            raise ValueError(
                f"anchor_sizes={list(sizes)}; expected 5 sizes (px), one per level P2..P6"
            )
        object.__setattr__(self, "anchor_sizes", sizes)
        object.__setattr__(self, "aspect_ratios", _floats(self.aspect_ratios, "aspect_ratios"))
        for name in ("rpn_pre_nms_top_n", "rpn_post_nms_top_n"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        for name in ("fpn_channels", "box_detections_per_img", "box_batch_size_per_image"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected an int >= 1")
        t = self.trainable_backbone_layers
        if t is not None and not 0 <= t <= 5:
            raise ValueError(f"trainable_backbone_layers={t!r}; expected an int in 0..5")
        for name in ("box_score_thresh", "score_threshold", "mask_threshold"):
            check_probability(getattr(self, name), name)


#: classes of torchvision's COCO checkpoint, background included (91 = 90 category slots + 1)
COCO_NUM_CLASSES = 91
#: torchvision's anchors (one size per level P2..P6, three ratios height / width), used when
#: the training data has no objects to measure
DEFAULT_ANCHOR_SIZES = (32.0, 64.0, 128.0, 256.0, 512.0)
DEFAULT_ASPECT_RATIOS = (0.5, 1.0, 2.0)
#: pyramid levels of the segwise-encoder layout with anchors (RPN on P2..P6)
LEVELS = (2, 3, 4, 5, 6)


def derive_anchors(
    sizes: np.ndarray, aspect_ratios: np.ndarray, *, levels: int = len(LEVELS)
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Anchor sizes (one per pyramid level) and three aspect ratios from the training objects.

    Sizes: `segwise.instance.anchors.anchor_sizes_from_stats` (shared with YOLACT): ``levels``
    values spaced geometrically from the 5th to the 95th percentile of the object sizes (at
    least 2 px; smallest level first, so small objects meet the finest stride), i.e. the
    anchors span the objects the data has rather than torchvision's COCO range of 32-512 px.
    Ratios (height / width): the 10th, 50th and 90th percentiles of the object aspect
    ratios, widened to at least x1.25 around the median so the three differ.
    No objects: torchvision's defaults (`DEFAULT_ANCHOR_SIZES`, `DEFAULT_ASPECT_RATIOS`).

    Args:
        sizes: ``(K,)`` object sizes ``sqrt(w * h)`` in px.
        aspect_ratios: ``(K,)`` object ``h / w``.
        levels: pyramid levels with anchors.

    Returns:
        ``(sizes, ratios)``, rounded to 0.1 px and 0.01.
    """
    from segwise.instance.anchors import anchor_sizes_from_stats

    sizes = np.asarray(sizes, dtype=np.float64)
    ratios = np.asarray(aspect_ratios, dtype=np.float64)
    if sizes.size == 0:
        return DEFAULT_ANCHOR_SIZES[:levels], DEFAULT_ASPECT_RATIOS
    r10, r50, r90 = (float(v) for v in np.quantile(ratios, [0.1, 0.5, 0.9]))
    r10, r90 = min(r10, r50 / 1.25), max(r90, r50 * 1.25)
    return (
        anchor_sizes_from_stats(sizes, num_levels=levels),
        tuple(round(v, 2) for v in (r10, r50, r90)),
    )
