"""Mask R-CNN (He et al., ICCV 2017) as an instance method, on any segwise encoder.

Model: segwise encoder -> FPN P2..P6 -> torchvision's RPN, RoIAlign, box and mask heads
(`segwise.instance.maskrcnn.build_maskrcnn_on_encoder`). The encoder name
``tv_resnet50_fpn_v2`` selects torchvision's own ``maskrcnn_resnet50_fpn_v2`` instead, the
only layout torchvision's COCO checkpoint fits (``--weights coco``).

Weights (``--weights``): ``imagenet`` = the encoder's ImageNet weights (local files, as for the
semantic models; torchvision's ResNet-50 for ``tv_resnet50_fpn_v2``); ``coco`` = torchvision's
COCO Mask R-CNN checkpoint (``tv_resnet50_fpn_v2`` only); or a path to a state_dict of the same
layout.

Loss: torchvision's Mask R-CNN losses (RPN objectness BCE + smooth-L1 box, Fast R-CNN
classifier CE + smooth-L1 box, per-RoI mask BCE; He et al. section 3), returned term by term.
Anchors are derived from the training objects (`segwise.instance.maskrcnn.derive_anchors`)
unless ``anchor_sizes`` / ``aspect_ratios`` are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import nn

from segwise._validation import check_probability
from segwise.instance.methods.base import ObjectStats
from segwise.instance.representation import InstancePrediction

__all__ = ["TV_ENCODER", "MaskRCNN", "MaskRCNNOptions"]

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


class MaskRCNN:
    """The ``maskrcnn`` instance method (protocol: `segwise.instance.methods.base`)."""

    name: ClassVar[str] = "maskrcnn"
    description: ClassVar[str] = (
        "Mask R-CNN on any segwise encoder (default resnet50) + FPN, torchvision's heads; "
        f"--encoder {TV_ENCODER} for torchvision's COCO layout (--weights coco)"
    )
    options_type: ClassVar[type] = MaskRCNNOptions
    exportable: ClassVar[bool] = False
    record_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def resolve_options(self, options: MaskRCNNOptions, stats: ObjectStats | None) -> Any:
        """Anchors from ``stats`` where not given (torchvision's when ``stats`` is None or
        has no objects)."""
        import dataclasses

        from segwise.instance.maskrcnn import derive_anchors

        if options.anchor_sizes is not None and options.aspect_ratios is not None:
            return options
        sizes, ratios = derive_anchors(
            stats.sizes if stats is not None else [],
            stats.aspect_ratios if stats is not None else [],
        )
        return dataclasses.replace(
            options,
            anchor_sizes=options.anchor_sizes or sizes,
            aspect_ratios=options.aspect_ratios or ratios,
        )

    def derived_summary(self, options: MaskRCNNOptions) -> str:
        """One line for the run banner: the anchors in use."""
        sizes = ", ".join(f"{s:g}" for s in options.anchor_sizes or ())
        ratios = ", ".join(f"{r:g}" for r in options.aspect_ratios or ())
        return f"anchors: sizes [{sizes}] px on P2..P6, aspect ratios (h/w) [{ratios}]"

    def build(
        self,
        *,
        encoder: str | None,
        in_channels: int,
        num_classes: int,
        options: MaskRCNNOptions,
        weights: str | None,
    ) -> nn.Module:
        """Mask R-CNN for ``num_classes`` foreground classes (module docstring for weights)."""
        from segwise.instance.maskrcnn import (
            DEFAULT_ANCHOR_SIZES,
            DEFAULT_ASPECT_RATIOS,
            build_maskrcnn,
            build_maskrcnn_on_encoder,
            set_anchors,
        )

        encoder = encoder or DEFAULT_ENCODER
        sizes = options.anchor_sizes or DEFAULT_ANCHOR_SIZES
        ratios = options.aspect_ratios or DEFAULT_ASPECT_RATIOS
        common = {
            "box_score_thresh": options.box_score_thresh,
            "box_detections_per_img": options.box_detections_per_img,
            "rpn_pre_nms_top_n": options.rpn_pre_nms_top_n,
            "rpn_post_nms_top_n": options.rpn_post_nms_top_n,
            "box_batch_size_per_image": options.box_batch_size_per_image,
        }
        if encoder == TV_ENCODER:
            if in_channels != 3:
                raise ValueError(
                    f"--encoder {TV_ENCODER} needs 3-channel images, not {in_channels}; use a "
                    "segwise encoder (e.g. --encoder resnet50), which adapts its first conv"
                )
            model = build_maskrcnn(
                num_classes=num_classes,
                weights=None if weights == "imagenet" else weights,
                weights_backbone="imagenet" if weights == "imagenet" else None,
                trainable_backbone_layers=options.trainable_backbone_layers,
                image_mean=[0.0] * 3, image_std=[1.0] * 3,
                **common,
            )
            set_anchors(model, sizes, ratios)
            return model
        if weights == "coco":
            raise ValueError(
                f"--weights coco is torchvision's COCO Mask R-CNN checkpoint, which fits only "
                f"--encoder {TV_ENCODER} (its ResNet-50-FPN v2 layout), not --encoder "
                f"{encoder!r}; use --weights imagenet for {encoder!r}'s ImageNet weights"
            )
        model = build_maskrcnn_on_encoder(
            encoder=encoder, in_channels=in_channels, num_classes=num_classes,
            anchor_sizes=sizes, aspect_ratios=ratios, fpn_channels=options.fpn_channels,
            pretrained_encoder=weights == "imagenet", **common,
        )
        if weights not in (None, "imagenet"):
            from segwise.models.weights import load_full_state_dict

            load_full_state_dict(model, weights, kind="maskrcnn", setup=f"on encoder {encoder!r}")
        return model

    def prepare_item(
        self, item: dict[str, Any], *, options: MaskRCNNOptions, pad_value: int
    ) -> dict[str, Any]:
        """Unchanged: the cleaned ``"instances"`` are Mask R-CNN's targets."""
        return item

    def loss(
        self,
        model: nn.Module,
        images: torch.Tensor,
        targets: Sequence[Mapping[str, torch.Tensor]],
        *,
        options: MaskRCNNOptions,
        batch: Mapping[str, Any],
    ) -> dict[str, torch.Tensor]:
        """torchvision's loss dict: ``loss_objectness``, ``loss_rpn_box_reg``,
        ``loss_classifier``, ``loss_box_reg``, ``loss_mask`` (all computed at the images' own
        resolution)."""
        from segwise.instance.maskrcnn import native_size

        tv_targets = [
            {"boxes": t["boxes"].float(), "labels": t["labels"].long(), "masks": t["masks"]}
            for t in targets
        ]
        h, w = images.shape[-2:]
        with native_size(model, h, w):
            losses = model(list(images.float()), tv_targets)
        return {k: v.float() for k, v in losses.items()}

    def predict(
        self,
        model: nn.Module,
        images: torch.Tensor,
        *,
        options: MaskRCNNOptions,
        tile_size: int | None = None,
    ) -> list[InstancePrediction]:
        """Detections at the images' own resolution; ``tile_size`` is not used (RoI heads see
        the whole image)."""
        from segwise.instance.maskrcnn import native_size, predict_maskrcnn

        h, w = images.shape[-2:]
        with native_size(model, h, w):
            return predict_maskrcnn(
                model, list(images.float()), score_threshold=options.score_threshold,
                mask_threshold=options.mask_threshold,
            )

    def export_module(
        self, model: nn.Module, *, options: MaskRCNNOptions, max_instances: int
    ) -> nn.Module:
        from segwise.errors import ExportError

        raise ExportError(
            "maskrcnn cannot be exported with its decoding: its two stages (proposals, then "
            "RoI heads on a data-dependent number of boxes) have no fixed-size form in segwise; "
            "use segwise predict --checkpoint"
        )
