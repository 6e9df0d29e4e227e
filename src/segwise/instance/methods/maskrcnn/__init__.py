"""Mask R-CNN (``--model maskrcnn``): the method object (`.spec`), its options and anchors
(`.options`), networks and builders (`.model`) and decoding (`.decode`)."""

from __future__ import annotations

from segwise.instance.methods.maskrcnn.options import TV_ENCODER, MaskRCNNOptions, derive_anchors
from segwise.instance.methods.maskrcnn.spec import MaskRCNN

__all__ = ["TV_ENCODER", "MaskRCNN", "MaskRCNNOptions", "derive_anchors"]
