"""YOLACT (Bolya et al., "YOLACT: Real-time Instance Segmentation", ICCV 2019) on the seam.

A single-stage detector whose masks are linear combinations of ``k`` shared prototypes:

- model (`.model.YOLACTNet`): any segwise encoder with output stride 32
  -> FPN P3-P7 (`segwise.models.necks`) -> protonet on P3 (``k = 32`` prototypes at stride 4),
  one prediction head shared by all levels (class scores, SSD box deltas, ``k`` tanh mask
  coefficients per anchor), a semantic head on P3 for the auxiliary loss;
- anchors: one size per level, derived from the training data's object sizes by default
  (`segwise.instance.anchors.anchor_sizes_by_stride`), times 3 scales 2^(-1/3), 1, 2^(1/3),
  aspect ratios 1, 1/2, 2; matched at IoU 0.4 / 0.3 with every tied best anchor claimed;
- losses (`.loss`): OHEM 3:1 cross-entropy (or focal), smooth-L1 box,
  box-cropped box-area-normalised mask BCE, semantic BCE;
- decoding (`.decode`): Fast NMS (`segwise.instance.nms`), masks
  assembled as ``sigmoid(prototypes x coefficients)`` and cropped to the box; exportable to ONNX
  with fixed-size outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import nn

from segwise.instance.methods.base import ObjectStats, as_instance_model
from segwise.instance.methods.yolact.options import PAPER_ANCHOR_SIZES, ClassLoss, YOLACTOptions
from segwise.instance.representation import InstancePrediction

__all__ = ["YOLACT"]

#: encoder used when ``--encoder`` is not given (the paper's YOLACT-550 with ResNet-50 variant)
DEFAULT_ENCODER = "resnet50"


class YOLACT:
    """The ``yolact`` instance method (protocol: `segwise.instance.methods.base`)."""

    name: ClassVar[str] = "yolact"
    description: ClassVar[str] = (
        "YOLACT (Bolya et al. 2019): single-stage, masks from 32 prototypes x per-anchor "
        "coefficients, Fast NMS; any --encoder with stride 32 (default resnet50), exportable"
    )
    options_type: ClassVar[type] = YOLACTOptions
    exportable: ClassVar[bool] = True
    #: files written before anchor_scales existed have one anchor scale per level (YOLACT)
    record_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({"anchor_scales": (1.0,)})

    def resolve_options(self, options: YOLACTOptions, stats: ObjectStats | None) -> YOLACTOptions:
        """Fill ``anchor_sizes`` from ``stats.sizes`` when unset (kept unset without data or
        objects: `build` then uses `PAPER_ANCHOR_SIZES`)."""
        from segwise.instance.anchors import anchor_sizes_by_stride
        from segwise.instance.methods.yolact.model import LEVELS

        if options.anchor_sizes is not None or stats is None or len(stats.sizes) == 0:
            return options
        sizes = anchor_sizes_by_stride(stats.sizes, strides=[2**level for level in LEVELS])
        return dataclasses.replace(options, anchor_sizes=sizes)

    def derived_summary(self, options: YOLACTOptions) -> str:
        """One line for the run banner: the anchors."""
        sizes = options.anchor_sizes or PAPER_ANCHOR_SIZES
        source = "" if options.anchor_sizes else " (paper defaults: no training objects measured)"
        return (
            f"anchor sizes P3-P7 {', '.join(f'{s:g}' for s in sizes)} px{source}, times "
            f"{', '.join(f'{m:.3g}' for m in options.anchor_scales)}, aspect ratios (h/w) "
            f"{', '.join(f'{r:g}' for r in options.aspect_ratios)}"
        )

    def build(
        self,
        *,
        encoder: str | None,
        in_channels: int,
        num_classes: int,
        options: YOLACTOptions,
        weights: str | None,
    ) -> nn.Module:
        """`YOLACTNet` on ``encoder`` (default resnet50). ``weights``: None, ``"imagenet"``
        (the encoder's ImageNet weights, local files) or a path to a YOLACT state_dict."""
        from segwise.instance.methods.yolact.model import LEVELS, YOLACTNet
        from segwise.models.necks import build_encoder_fpn

        name = encoder or DEFAULT_ENCODER
        path = None
        if weights is not None and weights != "imagenet":
            path = Path(weights)
            if not path.is_file():
                raise ValueError(
                    f"weights={weights!r} is neither 'imagenet' nor an existing file; expected "
                    "None, 'imagenet' (encoder weights) or a path to a yolact state_dict"
                )
        backbone = build_encoder_fpn(
            name, in_channels=in_channels, levels=LEVELS, out_channels=options.fpn_channels,
            extra="conv", pretrained=weights == "imagenet",
        )  # fmt: skip
        model = YOLACTNet(
            backbone,
            num_classes=num_classes,
            num_prototypes=options.num_prototypes,
            anchor_sizes=options.anchor_sizes or PAPER_ANCHOR_SIZES,
            aspect_ratios=options.aspect_ratios,
            anchor_scales=options.anchor_scales,
            background_class=options.class_loss is ClassLoss.OHEM,
        )
        if path is not None:
            from segwise.models.weights import load_full_state_dict

            load_full_state_dict(
                model, path, kind="yolact", setup=f"on encoder {name!r} with {num_classes} classes"
            )
        return as_instance_model(model, self, options)

    def prepare_item(
        self, item: dict[str, Any], *, options: YOLACTOptions, pad_value: int
    ) -> dict[str, Any]:
        """Unchanged: targets are matched to anchors in `loss` (anchors depend on the size)."""
        return item

    def loss(
        self,
        model: nn.Module,
        images: torch.Tensor,
        targets: Sequence[Mapping[str, torch.Tensor]],
        *,
        options: YOLACTOptions,
        batch: Mapping[str, Any],
    ) -> dict[str, torch.Tensor]:
        """``{"loss_class", "loss_box", "loss_mask", "loss_semantic"}``
        (`.loss.yolact_loss`)."""
        from segwise.instance.methods.yolact.loss import yolact_loss

        return yolact_loss(model(images), targets, options=options)

    @torch.no_grad()
    def predict(
        self,
        model: nn.Module,
        images: torch.Tensor,
        *,
        options: YOLACTOptions,
        tile_size: int | None = None,
    ) -> list[InstancePrediction]:
        """`.decode.select_detections`, masks assembled for the kept
        detections only (`assemble_masks`), overlaps resolved by score
        (`InstancePrediction.from_masks`). ``tile_size`` is not used (whole images)."""
        from segwise.instance.methods.yolact.decode import assemble_masks, select_detections

        height, width = images.shape[-2:]
        outputs = model(images)
        scores, labels, coefs, boxes = select_detections(
            outputs, height=height, width=width, options=options,
            background_class=model.background_class,
        )  # fmt: skip
        out = []
        for i in range(images.shape[0]):
            present = scores[i] > 0  # masks only for the detections kept (not every slot)
            if not present.any():
                out.append(InstancePrediction.empty((int(height), int(width))))
                continue
            masks = assemble_masks(
                outputs["prototypes"][i : i + 1], coefs[i : i + 1, present],
                boxes[i : i + 1, present], height=height, width=width,
            )[0]  # fmt: skip
            out.append(
                InstancePrediction.from_masks(
                    masks.float().cpu().numpy(),
                    labels=labels[i, present].cpu().numpy(),
                    scores=scores[i, present].float().clamp(max=1).cpu().numpy(),
                    mask_threshold=options.mask_threshold,
                )
            )
        return out

    def export_module(
        self, model: nn.Module, *, options: YOLACTOptions, max_instances: int
    ) -> nn.Module:
        """`.decode.YOLACTExport` with ``max_instances`` slots: ``images
        (N, C, H, W) -> scores (N, k), labels (N, k), masks (N, k, H, W)`` (mask
        probabilities; zero in empty slots)."""
        from segwise.instance.methods.yolact.decode import YOLACTExport

        return YOLACTExport(
            model, options=dataclasses.replace(options, max_detections=int(max_instances))
        )
