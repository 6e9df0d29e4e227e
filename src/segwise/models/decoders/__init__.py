"""Decoders: one architecture per file (U-Net, FCN, DeepLab v3/v3+)."""

from __future__ import annotations

from segwise.models.decoders.deeplab import ASPP, DeepLabV3Decoder, DeepLabV3PlusDecoder
from segwise.models.decoders.fcn import FCNDecoder, FCNSkipDecoder, FCNVariant
from segwise.models.decoders.unet import UNetBlock, UNetDecoder

__all__ = [
    "ASPP",
    "DeepLabV3Decoder",
    "DeepLabV3PlusDecoder",
    "FCNDecoder",
    "FCNSkipDecoder",
    "FCNVariant",
    "UNetBlock",
    "UNetDecoder",
]
