"""Mask R-CNN (He et al., ICCV 2017) as an instance method, on any segwise encoder.

Model: segwise encoder -> FPN P2..P6 -> torchvision's RPN, RoIAlign, box and mask heads
(`.model.build_maskrcnn_on_encoder`). The encoder name
``tv_resnet50_fpn_v2`` selects torchvision's own ``maskrcnn_resnet50_fpn_v2`` instead, the
only layout torchvision's COCO checkpoint fits (``--weights coco``).

Weights (``--weights``): ``imagenet`` = the encoder's ImageNet weights (local files, as for the
semantic models; torchvision's ResNet-50 for ``tv_resnet50_fpn_v2``); ``coco`` = torchvision's
COCO Mask R-CNN checkpoint (``tv_resnet50_fpn_v2`` only); or a path to a state_dict of the same
layout.

Loss: torchvision's Mask R-CNN losses (RPN objectness BCE + smooth-L1 box, Fast R-CNN
classifier CE + smooth-L1 box, per-RoI mask BCE; He et al. section 3), returned term by term.
Anchors are derived from the training objects (`.options.derive_anchors`) unless
``anchor_sizes`` / ``aspect_ratios`` are given. Decoding: `.decode.predict_maskrcnn`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import nn

from segwise.instance.methods.base import ObjectStats, as_instance_model
from segwise.instance.methods.maskrcnn.options import (
    DEFAULT_ANCHOR_SIZES,
    DEFAULT_ASPECT_RATIOS,
    DEFAULT_ENCODER,
    TV_ENCODER,
    MaskRCNNOptions,
    derive_anchors,
)
from segwise.instance.representation import InstancePrediction

__all__ = ["MaskRCNN"]


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
        from segwise.instance.methods.maskrcnn.model import (
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
            return as_instance_model(model, self, options)
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
        return as_instance_model(model, self, options)

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
        from segwise.instance.methods.maskrcnn.model import native_size

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
        from segwise.instance.methods.maskrcnn.decode import predict_maskrcnn
        from segwise.instance.methods.maskrcnn.model import native_size

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
