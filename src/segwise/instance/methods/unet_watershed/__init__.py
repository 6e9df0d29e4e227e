"""U-Net + watershed (``--model unet_watershed``): the method object (`.spec`), its options
(`.options`), the 3-class targets and border weights (`.targets`) and the watershed decoding
(`.decode`). The network is any segwise semantic model (`segwise.models.create_model`)."""

from __future__ import annotations

from segwise.instance.methods.unet_watershed.decode import decode_unet_logits
from segwise.instance.methods.unet_watershed.options import (
    UNET_IGNORE,
    UNET_NUM_CLASSES,
    ClassBalance,
    Decoding,
    UNetWatershedOptions,
)
from segwise.instance.methods.unet_watershed.spec import UNetWatershed

__all__ = [
    "UNET_IGNORE",
    "UNET_NUM_CLASSES",
    "ClassBalance",
    "Decoding",
    "UNetWatershed",
    "UNetWatershedOptions",
    "decode_unet_logits",
]
