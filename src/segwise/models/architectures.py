"""Model builders (one per registered architecture) and the model registry.

Every builder takes ``encoder``, ``in_channels``, ``num_classes`` and ``pretrained`` plus the
architecture's own keyword-only options, and returns a :class:`SegmentationModel`. The options
are documented per builder and in ``docs/models.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from segwise._validation import as_enum
from segwise.models.blocks import Norm, Upsampling
from segwise.models.decoders.deeplab import (
    DeepLabV3Decoder,
    DeepLabV3PlusDecoder,
    default_atrous_rates,
)
from segwise.models.decoders.fcn import FCNDecoder, FCNSkipDecoder, FCNVariant
from segwise.models.decoders.unet import UNetDecoder
from segwise.models.encoders import UNetTextbookEncoder, build_encoder
from segwise.models.heads import FCNHead, ResizeHead, SegmentationHead
from segwise.models.init import Distribution, init_relu_convs
from segwise.models.registry import Registry
from segwise.models.segmentation_model import SegmentationModel
from segwise.models.volumetric import build_resenc_unet3d, build_resunet3d, build_unet3d

__all__ = [
    "BUILDER_ARGS",
    "MODELS",
    "ModelSpec",
    "build_deeplabv3",
    "build_deeplabv3plus",
    "build_fcn",
    "build_fcn_skip",
    "build_unet",
    "build_unet_textbook",
]


#: the arguments every builder takes that are not the architecture's own options
BUILDER_ARGS = frozenset({"encoder", "in_channels", "num_classes", "pretrained"})


@dataclass(frozen=True)
class ModelSpec:
    """One registered architecture.

    Attributes:
        build: the builder (keyword-only arguments, see the ``build_*`` functions).
        default_encoder: encoder used when ``create_model(..., encoder=None)``.
        description: one line for ``segwise models``.
        spatial_dims: 2 for images (input ``(N, C, H, W)``), 3 for volumes (``(N, C, D, H,
            W)``: ``unet3d``, ``resenc_unet3d``, ``resunet3d``; docs/models.md, "3D models").
    """

    build: Callable[..., SegmentationModel]
    default_encoder: str
    description: str
    spatial_dims: int = 2


def _check_head_kernel(size: int) -> None:
    if isinstance(size, bool) or size not in (1, 3):
        raise ValueError(f"head_kernel_size={size!r} is not valid; expected 1 or 3")


def _aux_head(encoder, num_classes: int, norm: Norm | str, aux: bool) -> FCNHead | None:
    # torchvision's aux_loss head reads layer3, the second-deepest feature
    return FCNHead(encoder.out_channels[-2], num_classes, norm=norm) if aux else None


def build_unet(
    *,
    encoder: str,
    in_channels: int,
    num_classes: int,
    pretrained: bool,
    decoder_channels: Sequence[int] | None = None,
    upsampling: Upsampling | str = Upsampling.NEAREST,
    norm: Norm | str = Norm.BATCH,
    output_stride: int = 32,
    head_kernel_size: int = 3,
) -> SegmentationModel:
    """U-Net decoder on any encoder (skips concatenated at every encoder stage).

    Options:
        decoder_channels: widths of the decoder blocks, deepest first (default
            ``(256, 128, 64, 32, 16)`` truncated to the number of blocks).
        upsampling: ``"nearest"`` (default, as smp), ``"bilinear"`` or ``"transposed"``.
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
        output_stride: encoder output stride (32; 16 or 8 dilate the last stages).
        head_kernel_size: 3 (default, as smp) or 1. The last decoder block has only 16
            channels; see docs/models.md, "Initialisation", for the measurement.
    """
    _check_head_kernel(head_kernel_size)
    enc = build_encoder(
        encoder, in_channels=in_channels, output_stride=output_stride, pretrained=pretrained
    )
    dec = UNetDecoder(
        enc.out_channels,
        enc.reductions,
        decoder_channels=decoder_channels,
        upsampling=upsampling,
        norm=norm,
    )
    head = SegmentationHead(dec.out_channels, num_classes, kernel_size=head_kernel_size)
    return SegmentationModel(enc, dec, head)


def build_unet_textbook(
    *,
    encoder: str,
    in_channels: int,
    num_classes: int,
    pretrained: bool,
    base_width: int = 64,
    depth: int = 4,
    upsampling: Upsampling | str = Upsampling.TRANSPOSED,
    norm: Norm | str = Norm.GROUP,
    head_kernel_size: int = 1,
) -> SegmentationModel:
    """The U-Net of Ronneberger et al. (2015), padded convs, group norm by default.

    31,037,698 parameters with 3 inputs, 2 classes and the defaults (transposed upsampling);
    31,384,898 with ``upsampling="bilinear"``: no transposed conv (-8c^2 - c per level of
    width c), but the first conv after upsampling sees 3c instead of 2c channels (+9c^2).

    Options:
        base_width: width of the first level (64).
        depth: number of poolings (4), widths ``base_width * 2**i``.
        upsampling: ``"transposed"`` (default, the paper's up-convolution), ``"bilinear"``
            or ``"nearest"``.
        norm: ``"group"`` (default: GroupNorm, 32 groups, Wu & He 2018; ahead of MONAI
            ``BasicUNet`` in training loss and val score on dsb2018 and CamVid),
            ``"batch"`` (the papers' BatchNorm; fastest on CamVid, slowest on dsb2018's mixed
            microscopy; segwise's default before 2026-12-01), ``"instance"`` (MONAI
            ``BasicUNet``'s and nnU-Net's) or ``"none"`` (the paper; convs get biases). The
            measurements: docs/benchmarks.md, "Textbook U-Net: the default norm".
        head_kernel_size: 1 (default, the paper's classifier) or 3.

    Init (:mod:`segwise.models.init`): the paper's Gaussian ``N(0, 2 / fan_in)`` (section 3)
    for every conv (with or without a following norm), Glorot classifier.
    """
    _check_head_kernel(head_kernel_size)
    if encoder != "unet_textbook":
        raise ValueError(
            f"encoder={encoder!r} is not valid for 'unet_textbook'; expected 'unet_textbook' "
            "(for a U-Net on another encoder use create_model('unet', encoder=...))"
        )
    if pretrained:
        raise ValueError(
            "weights='imagenet' is not valid for 'unet_textbook'; expected None or a local file"
        )
    enc = UNetTextbookEncoder(
        in_channels=in_channels, base_width=base_width, depth=depth, norm=norm
    )
    dec = UNetDecoder(
        enc.out_channels,
        enc.reductions,
        decoder_channels=enc.out_channels[-2::-1],
        upsampling=upsampling,
        norm=norm,
    )
    init_relu_convs(dec, distribution=Distribution.NORMAL)  # as the encoder
    head = SegmentationHead(dec.out_channels, num_classes, kernel_size=head_kernel_size)
    return SegmentationModel(enc, dec, head)


def build_fcn(
    *,
    encoder: str,
    in_channels: int,
    num_classes: int,
    pretrained: bool,
    output_stride: int = 8,
    norm: Norm | str = Norm.BATCH,
    aux: bool = False,
) -> SegmentationModel:
    """torchvision's FCN: ``FCNHead`` on the deepest feature, bilinear x``output_stride``.

    With ``encoder="resnet50"`` it has exactly the parameters of
    ``torchvision.models.segmentation.fcn_resnet50`` (same ``num_classes`` and ``aux_loss``).

    Options:
        output_stride: 8 (default, as torchvision), 16 or 32.
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
        aux: add torchvision's auxiliary ``FCNHead`` on the second-deepest feature (layer3);
            read by ``model(x, with_aux=True).aux`` (training); ``model(x)`` stays a tensor.
    """
    enc = build_encoder(
        encoder, in_channels=in_channels, output_stride=output_stride, pretrained=pretrained
    )
    dec = FCNDecoder(enc.out_channels[-1], norm=norm)
    return SegmentationModel(
        enc,
        dec,
        SegmentationHead(dec.out_channels, num_classes),
        aux_head=_aux_head(enc, num_classes, norm, aux),
    )


def build_fcn_skip(variant: FCNVariant | str) -> Callable[..., SegmentationModel]:
    """Return the builder of FCN-32s, -16s or -8s (Long et al. 2015) for ``variant``."""
    variant = as_enum(variant, FCNVariant, "variant")

    def build(
        *,
        encoder: str,
        in_channels: int,
        num_classes: int,
        pretrained: bool,
        fc_channels: int = 4096,
    ) -> SegmentationModel:
        enc = build_encoder(
            encoder, in_channels=in_channels, output_stride=32, pretrained=pretrained
        )
        dec = FCNSkipDecoder(
            enc.out_channels,
            enc.reductions,
            num_classes=num_classes,
            variant=variant,
            fc_channels=fc_channels,
        )
        return SegmentationModel(enc, dec, ResizeHead())

    build.__doc__ = f"""FCN-{variant.value} (Long et al. 2015) on VGG-16 (or any stride-32 encoder).

    Options:
        fc_channels: width of fc6 (7x7 conv) and fc7 (1x1 conv), 4096 in the paper.
    """
    return build


def build_deeplabv3(
    *,
    encoder: str,
    in_channels: int,
    num_classes: int,
    pretrained: bool,
    output_stride: int = 8,
    atrous_rates: Sequence[int] | None = None,
    separable: bool = False,
    norm: Norm | str = Norm.BATCH,
    aux: bool = False,
) -> SegmentationModel:
    """DeepLab v3: ASPP with image pooling, 3x3 conv, 1x1 classifier, bilinear upsampling.

    With ``encoder="resnet50"`` it has ``torchvision...deeplabv3_resnet50``'s parameters minus
    256: the image-pooling branch has a conv bias (256) instead of BatchNorm (512), so that
    training with batch 1 works.

    Options:
        output_stride: 8 (default, as torchvision) or 16 (or 32).
        atrous_rates: default (6, 12, 18) at output stride 16, doubled at 8.
        separable: depthwise-separable 3x3 convs in ASPP and after it.
        norm: ``"batch"``, ``"group"`` (GroupNorm everywhere, incl. image pooling),
            ``"instance"`` (not in image pooling: a 1x1 map) or ``"none"``.
        aux: torchvision's auxiliary ``FCNHead`` on layer3 (``model(x, with_aux=True).aux``).
    """
    enc = build_encoder(
        encoder, in_channels=in_channels, output_stride=output_stride, pretrained=pretrained
    )
    rates = tuple(atrous_rates) if atrous_rates else default_atrous_rates(enc.reductions[-1])
    dec = DeepLabV3Decoder(enc.out_channels[-1], atrous_rates=rates, norm=norm, separable=separable)
    return SegmentationModel(
        enc,
        dec,
        SegmentationHead(dec.out_channels, num_classes),
        aux_head=_aux_head(enc, num_classes, norm, aux),
    )


def build_deeplabv3plus(
    *,
    encoder: str,
    in_channels: int,
    num_classes: int,
    pretrained: bool,
    output_stride: int = 16,
    atrous_rates: Sequence[int] | None = None,
    separable: bool = False,
    low_level_channels: int = 48,
    norm: Norm | str = Norm.BATCH,
    aux: bool = False,
) -> SegmentationModel:
    """DeepLab v3+: ASPP + decoder fusing the stride-4 feature reduced to 48 channels.

    Options:
        output_stride: 16 (default, as the paper trains) or 8 (or 32).
        atrous_rates: default (6, 12, 18) at output stride 16, doubled at 8.
        separable: depthwise-separable 3x3 convs in ASPP and decoder (the paper with Xception).
        low_level_channels: width of the reduced low-level feature (48).
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
        aux: auxiliary ``FCNHead`` on the second-deepest feature
            (``model(x, with_aux=True).aux``).
    """
    enc = build_encoder(
        encoder, in_channels=in_channels, output_stride=output_stride, pretrained=pretrained
    )
    rates = tuple(atrous_rates) if atrous_rates else default_atrous_rates(enc.reductions[-1])
    dec = DeepLabV3PlusDecoder(
        enc.out_channels,
        enc.reductions,
        atrous_rates=rates,
        norm=norm,
        separable=separable,
        low_level_channels=low_level_channels,
    )
    return SegmentationModel(
        enc,
        dec,
        SegmentationHead(dec.out_channels, num_classes),
        aux_head=_aux_head(enc, num_classes, norm, aux),
    )


MODELS: Registry[ModelSpec] = Registry("model")
MODELS.register("unet", ModelSpec(build_unet, "resnet34", "U-Net decoder on any encoder"))
MODELS.register(
    "unet_textbook",
    ModelSpec(build_unet_textbook, "unet_textbook", "the original U-Net (Ronneberger 2015)"),
)
MODELS.register("fcn", ModelSpec(build_fcn, "resnet50", "torchvision's FCN head on any encoder"))
for _variant in FCNVariant:
    MODELS.register(
        f"fcn{_variant.value}",
        ModelSpec(build_fcn_skip(_variant), "vgg16", f"FCN-{_variant.value} (Long 2015)"),
    )
MODELS.register(
    "deeplabv3", ModelSpec(build_deeplabv3, "resnet50", "DeepLab v3: ASPP with image pooling")
)
MODELS.register(
    "deeplabv3plus",
    ModelSpec(build_deeplabv3plus, "resnet50", "DeepLab v3+: ASPP + low-level decoder"),
)
MODELS.register(
    "unet3d",
    ModelSpec(build_unet3d, "unet3d", "the 3D U-Net (Çiçek 2016), volumes", spatial_dims=3),
)
MODELS.register(
    "resenc_unet3d",
    ModelSpec(
        build_resenc_unet3d,
        "resenc_unet3d",
        "nnU-Net's residual-encoder 3D U-Net (Isensee 2021), volumes",
        spatial_dims=3,
    ),
)
MODELS.register(
    "resunet3d",
    ModelSpec(
        build_resunet3d,
        "resunet3d",
        "residual 3D U-Net, strided residual units (Kerfoot 2018), volumes, CPU-light",
        spatial_dims=3,
    ),
)
