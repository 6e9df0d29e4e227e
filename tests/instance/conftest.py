"""Tiny hand-built label maps shared by the instance tests."""

from __future__ import annotations

import numpy as np


def rect_map(shape, rects):
    """Paint ``(id, y0, x0, h, w)`` rectangles, in order, onto a zero ``int32`` map."""
    out = np.zeros(shape, dtype=np.int32)
    for ident, y, x, h, w in rects:
        out[y : y + h, x : x + w] = ident
    return out


# per-method settings that keep a CPU test small (a method not listed gets its int
# "*channels*" / "*_dims" options shrunk to 16, see tiny_options)
TINY_OPTIONS = {
    "maskrcnn": {"fpn_channels": 16, "rpn_pre_nms_top_n": [50, 50],
                 "rpn_post_nms_top_n": [30, 30], "box_batch_size_per_image": 16,
                 "box_detections_per_img": 50, "score_threshold": 0.0},
    "unet_watershed": {"arch_options": {"decoder_channels": [32, 16, 16, 16, 16]}},
    "yolact": {"fpn_channels": 16, "num_prototypes": 4, "score_threshold": 0.0},
    "solov2": {"fpn_channels": 16, "head_channels": 16, "stacked_convs": 1,
               "mask_channels": 16, "kernel_dims": 16, "grids": [8, 6, 5, 4, 3]},
}


def tiny_options(name):
    """Small options of the instance method ``name`` (``TINY_OPTIONS`` or channels -> 16)."""
    import dataclasses

    from segwise.instance.methods import get_method

    if name in TINY_OPTIONS:
        return dict(TINY_OPTIONS[name])
    fields = dataclasses.fields(get_method(name).options_type)
    return {f.name: 16 for f in fields
            if ("channels" in f.name or f.name.endswith("_dims")) and isinstance(f.default, int)}
