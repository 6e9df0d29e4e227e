"""Mask R-CNN's networks (He et al., ICCV 2017; torchvision's heads) and their builders.

Two layouts:

- `build_maskrcnn_on_encoder`: any segwise encoder -> `segwise.models.necks.FPN` (P2..P6) ->
  torchvision's RPN, ``MultiScaleRoIAlign`` (P2..P5) and Mask R-CNN box and mask heads;
- `build_maskrcnn`: torchvision's ``maskrcnn_resnet50_fpn_v2`` itself (the layout of its COCO
  checkpoint, encoder name ``tv_resnet50_fpn_v2`` in ``segwise train``).

Anchors: `.options.derive_anchors` picks one size per pyramid level and three aspect ratios
from the training objects (`segwise.instance.methods.ObjectStats`).

No network access at run time: weights come from a local file. ``weights="coco"`` looks for
torchvision's COCO checkpoint in the torch hub cache only and otherwise fails at once, saying
where to download it and how to pass the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from segwise._validation import check_probability
from segwise.instance.methods.maskrcnn.options import LEVELS

__all__ = [
    "build_maskrcnn",
    "build_maskrcnn_on_encoder",
    "native_size",
    "set_anchors",
]

#: pyramid levels RoIAlign pools from (the RPN runs on every level of `LEVELS`, P2..P6)
_ROI_LEVELS = ("p2", "p3", "p4", "p5")


def set_anchors(model: nn.Module, sizes: Sequence[float], ratios: Sequence[float]) -> None:
    """Give a torchvision Mask R-CNN the anchor generator ``sizes`` (one per level) x
    ``ratios``; the RPN head must predict ``len(ratios)`` anchors per location."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    n_head = model.rpn.head.cls_logits.out_channels
    if n_head != len(ratios):
        raise ValueError(
            f"aspect_ratios={list(ratios)} gives {len(ratios)} anchors per location, but this "
            f"model's RPN head predicts {n_head} (e.g. the COCO checkpoint); pass {n_head} ratios"
        )
    model.rpn.anchor_generator = AnchorGenerator(
        tuple((float(s),) for s in sizes), (tuple(float(r) for r in ratios),) * len(sizes)
    )


@contextmanager
def native_size(model: nn.Module, height: int, width: int) -> Iterator[None]:
    """Let Mask R-CNN see an image at its own resolution (no internal resize; the transform
    still pads the batch to ``size_divisible``)."""
    transform = model.transform
    saved = transform.min_size, transform.max_size
    transform.min_size, transform.max_size = (min(height, width),), max(height, width)
    try:
        yield
    finally:
        transform.min_size, transform.max_size = saved


def build_maskrcnn_on_encoder(
    *,
    encoder: str,
    in_channels: int,
    num_classes: int,
    anchor_sizes: Sequence[float],
    aspect_ratios: Sequence[float],
    fpn_channels: int = 256,
    pretrained_encoder: bool = False,
    box_score_thresh: float = 0.05,
    box_detections_per_img: int = 100,
    rpn_pre_nms_top_n: tuple[int, int] = (2000, 1000),
    rpn_post_nms_top_n: tuple[int, int] = (2000, 1000),
    box_batch_size_per_image: int = 512,
) -> nn.Module:
    """Mask R-CNN on a segwise encoder: encoder -> FPN P2..P6 -> torchvision's heads.

    The RPN (``RPNHead``, one 3x3 conv) runs on P2..P6 with anchors ``anchor_sizes[l]`` x
    ``aspect_ratios`` per level; box and mask RoIs are pooled from P2..P5 by
    ``MultiScaleRoIAlign`` (7x7 and 14x14, level by box size, FPN paper eq. 1) and go through
    torchvision's ``TwoMLPHead`` + ``FastRCNNPredictor`` and ``MaskRCNNHeads`` (4 convs of
    ``fpn_channels``) + ``MaskRCNNPredictor``, i.e. the Mask R-CNN paper's FPN heads (the
    paper's 256 channels at the default ``fpn_channels``). Images are expected
    normalised already (the model's own normalisation is the identity).

    Args:
        encoder: a segwise encoder name (``segwise models --encoders``) with a stride-32
            feature; others are refused by name.
        in_channels: image channels.
        num_classes: foreground classes (outputs ``num_classes + 1``, 0 = background).
        anchor_sizes: five sizes (px), one per level P2..P6.
        aspect_ratios: anchor ratios height / width, the same on every level.
        fpn_channels: channels of every pyramid level.
        pretrained_encoder: load the encoder's ImageNet weights (local files only).
        box_score_thresh, box_detections_per_img, rpn_pre_nms_top_n, rpn_post_nms_top_n,
            box_batch_size_per_image: see `build_maskrcnn`.

    Returns:
        A ``torchvision.models.detection.MaskRCNN`` whose ``backbone`` is a
        `segwise.models.necks.EncoderFPN`.
    """
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    from segwise.models.necks import build_encoder_fpn

    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} is not valid; expected an int >= 1")
    if len(anchor_sizes) != len(LEVELS):
        raise ValueError(
            f"anchor_sizes={list(anchor_sizes)}; expected {len(LEVELS)} sizes, one per level "
            "P2..P6"
        )
    backbone = build_encoder_fpn(
        encoder, in_channels=in_channels, levels=LEVELS, out_channels=fpn_channels,
        extra="maxpool", pretrained=pretrained_encoder,
    )
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    model = MaskRCNN(
        backbone,
        num_classes=None,  # given by the two predictors below
        box_predictor=FastRCNNPredictor(1024, num_classes + 1),  # after TwoMLPHead's 1024
        rpn_anchor_generator=AnchorGenerator(
            tuple((float(s),) for s in anchor_sizes),
            (tuple(float(r) for r in aspect_ratios),) * len(anchor_sizes),
        ),
        box_roi_pool=MultiScaleRoIAlign(list(_ROI_LEVELS), output_size=7, sampling_ratio=2),
        mask_roi_pool=MultiScaleRoIAlign(list(_ROI_LEVELS), output_size=14, sampling_ratio=2),
        # the paper's mask head (4 convs + deconv) at the pyramid's width: identical to
        # torchvision's at fpn_channels=256, and a narrow pyramid gets a narrow head
        mask_head=MaskRCNNHeads(fpn_channels, (fpn_channels,) * 4, dilation=1),
        mask_predictor=MaskRCNNPredictor(fpn_channels, fpn_channels, num_classes + 1),
        image_mean=[0.0] * in_channels,
        image_std=[1.0] * in_channels,
        box_score_thresh=box_score_thresh,
        box_detections_per_img=box_detections_per_img,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n[0],
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n[1],
        rpn_post_nms_top_n_train=rpn_post_nms_top_n[0],
        rpn_post_nms_top_n_test=rpn_post_nms_top_n[1],
        box_batch_size_per_image=box_batch_size_per_image,
    )
    # pad batches to a multiple of both the top FPN stride (32) and the encoder's divisor
    model.transform.size_divisible = math.lcm(32, backbone.divisor)
    return model


def _hub_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _resolve(weights: str | Path, *, url: str, name: str) -> Path:
    """A local file for ``weights``: a path, or the alias found in the torch hub cache."""
    if isinstance(weights, Path) or (
        isinstance(weights, str) and weights not in {"coco", "imagenet"}
    ):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{name}={str(weights)!r}: no such file; expected a local .pth state_dict (or "
                f"{name}='coco'/None)"
            )
        return path
    cached = _hub_file(url)
    if cached.is_file():
        return cached
    raise FileNotFoundError(
        f"{name}={weights!r} needs the file {cached.name}, which is not in the torch hub cache "
        f"({cached.parent}) and segwise never downloads at run time. Download {url} on a "
        f"machine with network access and pass {name}='/path/to/{cached.name}' (or copy it to "
        f"{cached.parent})."
    )


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):  # training checkpoints wrap the weights
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}; expected a state_dict")
    return dict(state)


def _freeze_backbone(model: nn.Module, trainable_layers: int) -> None:
    """Freeze all but the last ``trainable_layers`` ResNet stages (torchvision's rule)."""
    layers = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers.append("bn1")
    for name, param in model.backbone.body.named_parameters():
        param.requires_grad_(any(name.startswith(layer) for layer in layers))


def build_maskrcnn(
    *,
    num_classes: int,
    weights: str | Path | None = None,
    weights_backbone: str | Path | None = None,
    trainable_backbone_layers: int | None = None,
    min_size: int = 800,
    max_size: int = 1333,
    box_score_thresh: float = 0.05,
    box_detections_per_img: int = 100,
    rpn_pre_nms_top_n: tuple[int, int] = (2000, 1000),
    rpn_post_nms_top_n: tuple[int, int] = (2000, 1000),
    box_batch_size_per_image: int = 512,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
) -> nn.Module:
    """torchvision's ``maskrcnn_resnet50_fpn_v2`` for ``num_classes`` foreground classes.

    Args:
        num_classes: foreground classes; the model has ``num_classes + 1`` outputs (0 =
            background) and labels are ``1..num_classes``.
        weights: ``None`` (random), ``"coco"`` (torchvision's COCO_V1 checkpoint from the torch
            hub cache; never downloaded), or a path to a Mask R-CNN v2 state_dict. If the file
            has another class count, it is loaded as is and the box and mask predictors are
            then replaced by fresh ones for ``num_classes + 1``.
        weights_backbone: ``None``, ``"imagenet"`` (torchvision ResNet-50 IMAGENET1K_V1 from
            the hub cache) or a path to a ResNet-50 state_dict; ignored when ``weights`` is set.
        trainable_backbone_layers: ResNet stages to train (0-5) when pretrained weights are
            loaded; default 3 then, and always 5 from scratch.
        min_size: the shorter image side is resized to this (``GeneralizedRCNNTransform``).
        max_size: ... unless the longer side would exceed this.
        box_score_thresh: detections below this score are dropped inside the model.
        box_detections_per_img: at most this many detections per image.
        rpn_pre_nms_top_n: ``(train, test)`` proposals kept per FPN level before NMS.
        rpn_post_nms_top_n: ``(train, test)`` proposals kept after NMS. The RoI heads cost
            scales with these; small values (e.g. ``(50, 50)``) make CPU tests fast.
        box_batch_size_per_image: RoIs sampled per image for the box/mask losses in training.
        image_mean: per-channel mean the model subtracts from its input; default ImageNet's
            (torchvision expects images in [0, 1]). Items already normalised by
            ``segwise.data`` need ``image_mean=(0, 0, 0), image_std=(1, 1, 1)``.
        image_std: per-channel std the model divides by; default ImageNet's.

    Returns:
        A ``torchvision.models.detection.MaskRCNN`` (train mode: ``model(images, targets)`` ->
        loss dict; eval mode: ``model(images)`` -> list of output dicts).
    """
    from torchvision.models import ResNet50_Weights
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, mask_rcnn
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} is not valid; expected an int >= 1")
    if trainable_backbone_layers is not None and not 0 <= trainable_backbone_layers <= 5:
        raise ValueError(
            f"trainable_backbone_layers={trainable_backbone_layers!r}; expected an int in 0..5"
        )
    for name, value in (("min_size", min_size), ("max_size", max_size)):
        if value < 1:
            raise ValueError(f"{name}={value!r} is not valid; expected an int >= 1")
    check_probability(box_score_thresh, "box_score_thresh")
    options = {
        "min_size": min_size,
        "max_size": max_size,
        "box_score_thresh": box_score_thresh,
        "box_detections_per_img": box_detections_per_img,
        "rpn_pre_nms_top_n_train": rpn_pre_nms_top_n[0],
        "rpn_pre_nms_top_n_test": rpn_pre_nms_top_n[1],
        "rpn_post_nms_top_n_train": rpn_post_nms_top_n[0],
        "rpn_post_nms_top_n_test": rpn_post_nms_top_n[1],
        "box_batch_size_per_image": box_batch_size_per_image,
    }
    if (image_mean is None) != (image_std is None):
        raise ValueError(
            f"image_mean={image_mean!r}, image_std={image_std!r}; expected both or neither"
        )
    if image_mean is not None and image_std is not None:
        if len(image_mean) != len(image_std) or min(image_std) <= 0:
            raise ValueError(
                f"image_mean={list(image_mean)}, image_std={list(image_std)}; expected one value "
                "per channel each, std > 0"
            )
        options["image_mean"] = [float(v) for v in image_mean]
        options["image_std"] = [float(v) for v in image_std]
    state = None
    if weights is not None:
        url = MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url
        state = _load_state_dict(_resolve(weights, url=url, name="weights"))
        key = "roi_heads.box_predictor.cls_score.weight"
        if key not in state:
            raise ValueError(
                f"weights={str(weights)!r} is not a Mask R-CNN state_dict (no {key!r}); "
                "expected the state_dict of maskrcnn_resnet50_fpn_v2"
            )
        file_classes = int(state[key].shape[0])
    # build with the file's class count so that loading is strict, then swap the predictors
    model = mask_rcnn.maskrcnn_resnet50_fpn_v2(
        weights=None,
        weights_backbone=None,
        num_classes=file_classes if state is not None else num_classes + 1,
        **options,
    )
    pretrained = state is not None or weights_backbone is not None
    if state is not None:
        model.load_state_dict(state)
        if file_classes != num_classes + 1:
            roi = model.roi_heads
            roi.box_predictor = FastRCNNPredictor(
                roi.box_predictor.cls_score.in_features, num_classes + 1
            )
            conv5 = roi.mask_predictor.conv5_mask
            roi.mask_predictor = mask_rcnn.MaskRCNNPredictor(
                conv5.in_channels, conv5.out_channels, num_classes + 1
            )
    elif weights_backbone is not None:
        url = ResNet50_Weights.IMAGENET1K_V1.url
        backbone = _load_state_dict(_resolve(weights_backbone, url=url, name="weights_backbone"))
        backbone = {k: v for k, v in backbone.items() if not k.startswith("fc.")}
        model.backbone.body.load_state_dict(backbone)
    if pretrained:
        _freeze_backbone(
            model, 3 if trainable_backbone_layers is None else trainable_backbone_layers
        )
    return model
