"""YOLACT (``--model yolact``): the method object (`.spec`), its options (`.options`), network
(`.model`), losses (`.loss`) and decoding (`.decode`)."""

from __future__ import annotations

from segwise.instance.methods.yolact.options import PAPER_ANCHOR_SIZES, ClassLoss, YOLACTOptions
from segwise.instance.methods.yolact.spec import YOLACT

__all__ = ["PAPER_ANCHOR_SIZES", "YOLACT", "ClassLoss", "YOLACTOptions"]
