"""SOLOv2's options value (``--model-option KEY=VALUE``) and the paper's constants, in their
own module so that the network, targets, loss and decoding read them without importing the
method object (`.spec`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from segwise._validation import as_enum, check_probability
from segwise.instance.matrix_nms import MatrixNMSKernel

__all__ = ["LEVELS", "PAPER_SCALE_RANGES", "PAPER_SHORT_SIDE", "SOLOv2Options", "SOLOv2Prediction"]

#: the paper's scale ranges (px of sqrt(box area), images of short side 800) per level P2..P6
PAPER_SCALE_RANGES = ((1.0, 96.0), (48.0, 192.0), (96.0, 384.0), (192.0, 768.0), (384.0, 2048.0))
#: the short image side the paper's scale ranges were set for
PAPER_SHORT_SIDE = 800
#: FPN levels SOLOv2 uses (P2..P6; the mask feature branch fuses P2..P5)
LEVELS = (2, 3, 4, 5, 6)


class SOLOv2Prediction(str, Enum):
    """How ``predict`` decodes an image larger than the training crops
    (`.tiling`)."""

    #: overlapping tiles of the training crops' side (``grid_reference``), merged: the network
    #: sees the CoordConv geometry it was trained on
    TILES = "tiles"
    #: the whole image in one pass (the paper's way, right when training saw whole images of
    #: that size; the export module always decodes this way)
    WHOLE = "whole"


@dataclass(frozen=True)
class SOLOv2Options:
    """Options of ``solov2`` (``--model-option KEY=VALUE``; stored in checkpoints).

    Attributes:
        grids: ``S`` of each level P2..P6 (paper: 40, 36, 24, 16, 12), the grid of an image
            of side ``grid_reference``.
        grid_reference: the image side (px) at which level ``l`` has ``S_l x S_l`` cells; an
            ``H x W`` input gets ``ceil(S_l H / R) x ceil(S_l W / R)`` cells, so a cell keeps its
            size in pixels when prediction runs on images larger than the training crops (the
            paper resizes every image to one scale, segwise predicts at full resolution).
            None: derived, the training crops' short side; without data, ``S_l x S_l`` at
            every size (the paper's behaviour).
        scale_ranges: ``(lo, hi)`` px of ``sqrt(box area)`` per level, or None to derive them
            from the data (module docstring).
        center_sampling: ``epsilon``, the share of the box that is the centre region (0.2).
        fpn_channels: FPN channels (256).
        head_channels: channels of the category/kernel branch convs (paper: 512).
        stacked_convs: 3x3 conv-GN-ReLU blocks per branch (paper: 4).
        mask_channels: channels inside the mask feature branch (authors' code: 128).
        kernel_dims: ``E``, mask feature channels = weights of a dynamic 1x1 kernel (256).
        focal_alpha: focal-loss ``alpha`` (0.25).
        focal_gamma: focal-loss ``gamma`` (2).
        mask_loss_weight: ``lambda`` of the Dice mask loss (paper: 3).
        category_threshold: decoding: (cell, class) candidates whose class probability is below
            are dropped before Matrix NMS (the paper's ``score_thr``, 0.1).
        mask_threshold: decoding: mask probability above which a pixel is inside (0.5).
        pre_nms_top_k: decoding: at most this many (cell, class) candidates enter Matrix NMS
            (authors' code: 500; 1000 here, for images with hundreds of objects).
        nms_kernel: `MatrixNMSKernel` (``gaussian`` or ``linear``).
        nms_sigma: the Gaussian kernel's ``sigma`` (authors' code: 2).
        score_threshold: decoding: instances whose score after Matrix NMS is below are not
            output. The paper's 0.05 (``update_thr``) suits COCO AP, which ranks by score; the
            DSB score, AP50 and PQ count every output instance, so the default is a decision
            threshold, 0.3 (lower it for COCO AP).
        max_instances: decoding: at most this many instances per image (authors' code: 100;
            400 here, as Mask R-CNN's ``box_detections_per_img``: DSB 2018 images hold up to
            ~375 nuclei).
        prediction: `SOLOv2Prediction`: ``tiles`` (default) decodes an image larger than
            ``grid_reference`` in overlapping tiles of that side, ``whole`` in one pass. Without
            a ``grid_reference`` the whole image is decoded.
        tile_overlap: share of a tile shared with its neighbour, in ``[0, 0.5]`` (0.25: 32 px
            of 128 px tiles); objects wider than the overlap may be cut at tile borders.
    """

    grids: tuple[int, ...] = (40, 36, 24, 16, 12)
    grid_reference: int | None = None
    scale_ranges: tuple[tuple[float, float], ...] | None = None
    center_sampling: float = 0.2
    fpn_channels: int = 256
    head_channels: int = 512
    stacked_convs: int = 4
    mask_channels: int = 128
    kernel_dims: int = 256
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    mask_loss_weight: float = 3.0
    category_threshold: float = 0.1
    mask_threshold: float = 0.5
    pre_nms_top_k: int = 1000
    nms_kernel: MatrixNMSKernel = MatrixNMSKernel.GAUSSIAN
    nms_sigma: float = 2.0
    score_threshold: float = 0.3
    max_instances: int = 400
    prediction: SOLOv2Prediction = SOLOv2Prediction.TILES
    tile_overlap: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "nms_kernel", as_enum(self.nms_kernel, MatrixNMSKernel,
                                                       "nms_kernel"))
        object.__setattr__(self, "prediction", as_enum(self.prediction, SOLOv2Prediction,
                                                       "prediction"))
        if not 0 <= self.tile_overlap <= 0.5:
            raise ValueError(f"tile_overlap={self.tile_overlap!r}; expected a share of the tile "
                             "in [0, 0.5], e.g. 0.25")
        grids = tuple(int(s) for s in self.grids)
        if len(grids) != len(LEVELS) or min(grids) < 1:
            raise ValueError(f"grids={self.grids!r}; expected {len(LEVELS)} positive grid sizes, "
                             "one per level P2..P6, e.g. grids=[40,36,24,16,12]")
        object.__setattr__(self, "grids", grids)
        if self.scale_ranges is not None:
            ranges = tuple((float(lo), float(hi)) for lo, hi in self.scale_ranges)
            if len(ranges) != len(LEVELS) or any(not 0 <= lo <= hi for lo, hi in ranges):
                raise ValueError(
                    f"scale_ranges={self.scale_ranges!r}; expected {len(LEVELS)} pairs (lo, hi) "
                    "with 0 <= lo <= hi, one per level P2..P6, or None to derive them")
            object.__setattr__(self, "scale_ranges", ranges)
        for name in ("fpn_channels", "head_channels", "mask_channels", "kernel_dims",
                     "pre_nms_top_k", "max_instances"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected an integer >= 1")
        if self.grid_reference is not None and int(self.grid_reference) < 1:
            raise ValueError(f"grid_reference={self.grid_reference!r}; expected a side in px "
                             ">= 1, or None to derive it from the training crops")
        if self.stacked_convs < 0:
            raise ValueError(f"stacked_convs={self.stacked_convs!r}; expected >= 0")
        for name in ("center_sampling", "focal_alpha", "category_threshold", "mask_threshold",
                     "score_threshold"):
            check_probability(getattr(self, name), name)
        for name in ("focal_gamma", "mask_loss_weight", "nms_sigma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected a value >= 0")
        if not self.nms_sigma > 0:
            raise ValueError(f"nms_sigma={self.nms_sigma!r}; expected a value > 0")
