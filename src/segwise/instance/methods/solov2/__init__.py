"""SOLOv2 (``--model solov2``): the method object (`.spec`), its options (`.options`), network
(`.model`), grid targets (`.targets`), loss (`.loss`), decoding (`.decode`) and tiled
prediction (`.tiling`)."""

from __future__ import annotations

from segwise.instance.methods.solov2.options import (
    PAPER_SCALE_RANGES,
    SOLOv2Options,
    SOLOv2Prediction,
)
from segwise.instance.methods.solov2.spec import SOLOv2

__all__ = ["PAPER_SCALE_RANGES", "SOLOv2", "SOLOv2Options", "SOLOv2Prediction"]
