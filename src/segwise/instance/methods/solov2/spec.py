"""SOLOv2 (Wang et al., "SOLOv2: Dynamic and Fast Instance Segmentation", NeurIPS 2020).

Instances are segmented by location: each cell of an ``S x S`` grid on each FPN level predicts
whether an instance's centre falls in it (category branch) and a dynamic 1x1 kernel that turns
the unified mask feature map into that instance's mask (kernel branch). Network:
`.model`; targets: `.targets`; decoding: Matrix
NMS (`segwise.instance.matrix_nms`).

Loss (paper eq. 1 of SOLO, kept by SOLOv2): ``L = L_cate + lambda * L_mask`` with

- ``L_cate``: sigmoid focal loss (Lin et al. 2017, eq. 5; ``alpha = 0.25``, ``gamma = 2``,
  ``torchvision.ops.sigmoid_focal_loss``) summed over every cell and class and divided by
  ``(number of positive cells + 1)``, as the authors' code;
- ``L_mask = mean over positive cells of (1 - D(p, q))`` (SOLO eq. 2-3) with
  ``D = 2 sum(p q) / (sum p**2 + sum q**2)``, the squared-denominator soft Dice of
  ``segwise.losses.soft_dice_loss(task="binary", scope="image", squared=True)``;
  ``lambda = 3``.

Scale ranges: the paper's ``((1, 96), (48, 192), (96, 384), (192, 768), (384, 2048))`` px of
``sqrt(box area)`` were set for images resized to a short side of 800 px. Since the grid is
relative to the image, segwise scales them by ``(short side of the training crops) / 800`` when
``scale_ranges`` is left unset and the training data is known (`ObjectStats`), so that small
images (and their small objects: 10 px nuclei in 256 px crops) keep the paper's object-to-cell
ratio; the first range starts at 0 and the last is stretched to the largest object. Without data
(rebuilding from a checkpoint stores the resolved ranges) the paper's ranges are used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from segwise.instance.methods.base import ObjectStats, as_instance_model
from segwise.instance.methods.solov2.options import (
    LEVELS,
    PAPER_SCALE_RANGES,
    PAPER_SHORT_SIDE,
    SOLOv2Options,
)
from segwise.instance.representation import InstancePrediction

__all__ = ["SOLOv2", "derive_scale_ranges"]

#: the encoder of the paper's main results
DEFAULT_ENCODER = "resnet50"


def derive_scale_ranges(stats: ObjectStats) -> tuple[tuple[float, float], ...]:
    """The paper's ranges scaled to the training crops (module docstring).

    ``factor = min(stats.image_size) / 800``; the first range starts at 0 and the last ends at
    least at the largest object, so that every object belongs to some level.
    """
    factor = min(stats.image_size) / PAPER_SHORT_SIDE
    ranges = [[round(lo * factor, 2), round(hi * factor, 2)] for lo, hi in PAPER_SCALE_RANGES]
    ranges[0][0] = 0.0
    if len(stats.sizes):
        ranges[-1][1] = max(ranges[-1][1], float(stats.sizes.max()))
    return tuple((lo, hi) for lo, hi in ranges)


class SOLOv2:
    """The ``solov2`` instance method (protocol: `segwise.instance.methods.base`)."""

    name: ClassVar[str] = "solov2"
    description: ClassVar[str] = (
        "SOLOv2 (Wang et al. 2020): per-grid-cell categories and dynamic mask kernels on any "
        "encoder + FPN, Matrix NMS; exportable"
    )
    options_type: ClassVar[type] = SOLOv2Options
    exportable: ClassVar[bool] = True
    #: options added later (prediction, tile_overlap, grid_reference) default to what older
    #: files did or, for ``prediction``, only act with a ``grid_reference`` (absent = None)
    record_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    # ------------------------------------------------------------------ options
    def resolve_options(self, options: SOLOv2Options, stats: ObjectStats | None) -> SOLOv2Options:
        """Fill ``scale_ranges`` (module docstring) and ``grid_reference`` (the training crops'
        short side) from the data; other options have no data default."""
        if options.scale_ranges is None:
            ranges = derive_scale_ranges(stats) if stats is not None else PAPER_SCALE_RANGES
            options = replace(options, scale_ranges=ranges)
        if options.grid_reference is None and stats is not None:
            options = replace(options, grid_reference=int(min(stats.image_size)))
        return options

    def derived_summary(self, options: SOLOv2Options) -> str:
        """One line for the run banner: the scale ranges in use."""
        ranges = ", ".join(f"P{lv} S={s}: {lo:g}-{hi:g}" for lv, s, (lo, hi) in zip(
            LEVELS, options.grids, options.scale_ranges or PAPER_SCALE_RANGES, strict=True))
        ref = (f"grids at {options.grid_reference} px, proportionally more cells on larger "
               "images" if options.grid_reference else "the same grids at every image size")
        return (f"scale ranges (px of sqrt(box area)) {ranges} (the paper's, scaled to the "
                f"training crops' short side / {PAPER_SHORT_SIDE}); {ref} (override with "
                "--model-option scale_ranges=... / grid_reference=...)")

    # ------------------------------------------------------------------ model
    def build(self, *, encoder: str | None, in_channels: int, num_classes: int,
              options: SOLOv2Options, weights: str | None) -> nn.Module:
        """Encoder + FPN (P2..P6, P6 by max-pool) + `SOLOv2Head` + `SOLOv2MaskBranch`.

        ``weights``: None, ``"imagenet"`` (the encoder's, local files), or a path to a
        state_dict of the whole model.
        """
        from segwise.instance.methods.solov2.model import SOLOv2Head, SOLOv2MaskBranch, SOLOv2Model
        from segwise.models.necks import build_encoder_fpn

        backbone = build_encoder_fpn(encoder or DEFAULT_ENCODER, in_channels=in_channels,
                                     levels=LEVELS, out_channels=options.fpn_channels,
                                     extra="maxpool", pretrained=weights == "imagenet")
        head = SOLOv2Head(options.fpn_channels, num_classes, grids=options.grids,
                          kernel_dims=options.kernel_dims, channels=options.head_channels,
                          stacked_convs=options.stacked_convs)
        branch = SOLOv2MaskBranch(options.fpn_channels, channels=options.mask_channels,
                                  kernel_dims=options.kernel_dims)
        model = SOLOv2Model(backbone, head, branch, grid_reference=options.grid_reference)
        if weights not in (None, "imagenet"):
            from segwise.models.weights import load_full_state_dict

            load_full_state_dict(model, weights,
                                 kind="solov2",
                                 setup=f"on encoder {encoder or DEFAULT_ENCODER!r}")
        return as_instance_model(model, self, options)

    def prepare_item(self, item: dict[str, Any], *, options: SOLOv2Options,
                     pad_value: int) -> dict[str, Any]:
        """Unchanged: grid targets depend on the padded batch size, so `loss` makes them."""
        return item

    # ------------------------------------------------------------------ training
    def loss(self, model: nn.Module, images: Tensor, targets: Sequence[Mapping[str, Tensor]], *,
             options: SOLOv2Options, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """``{"category": L_cate, "mask": lambda * L_mask}`` (module docstring).

        ``images (N, C, H, W)``; each target holds ``masks (K, H, W)``, ``labels (K,)`` and
        optionally ``crowd (K,)``: crowd regions are no instance, and the grid cells they would
        own are left out of the focal loss (neither positive nor negative).
        """
        from segwise.instance.methods.solov2.loss import solov2_loss

        return solov2_loss(model, images, targets, options=self.resolve_options(options, None))

    # ------------------------------------------------------------------ decoding
    def predict(self, model: nn.Module, images: Tensor, *, options: SOLOv2Options,
                tile_size: int | None = None) -> list[InstancePrediction]:
        """One `InstancePrediction` per image (overlaps resolved by score).

        Images larger than ``options.grid_reference`` (the training crops' side) in either side
        are decoded in overlapping tiles of that side (``options.prediction = tiles``, the
        default; `.tiling` says why); others, and every image with
        ``prediction = whole``, in one pass of `SOLOv2Decoder`. ``tile_size`` (the dense
        methods' sliding window) is not used: SOLOv2's tile is fixed by its training crops.
        """
        from segwise.instance.methods.solov2.options import SOLOv2Prediction
        from segwise.instance.methods.solov2.tiling import predict_tiled

        tile = options.grid_reference
        if (options.prediction is SOLOv2Prediction.TILES and tile is not None
                and max(images.shape[-2:]) > tile):
            return [predict_tiled(lambda x: self._predict_whole(model, x, options=options),
                                  image, tile=tile, overlap=options.tile_overlap)
                    for image in images]
        return self._predict_whole(model, images, options=options)

    @staticmethod
    def _predict_whole(model: nn.Module, images: Tensor, *,
                       options: SOLOv2Options) -> list[InstancePrediction]:
        """Fixed-size decoding (`SOLOv2Decoder`) of whole inputs, then the instances found."""
        from segwise.instance.methods.solov2.decode import SOLOv2Decoder

        decoder = SOLOv2Decoder(model, options)
        with torch.no_grad():
            scores, labels, probs = decoder.candidates(images)
        size = (images.shape[-2], images.shape[-1])
        out = []
        for s, lab, p in zip(scores.cpu(), labels.cpu(), probs, strict=True):
            keep = s > 0  # only the instances found are upsampled
            masks = decoder.upsample(p[keep.to(p.device)][None], size)[0].cpu()
            out.append(InstancePrediction.from_masks(
                masks, labels=lab[keep], scores=s[keep].clamp(0, 1),
                mask_threshold=options.mask_threshold))
        return out

    def export_module(self, model: nn.Module, *, options: SOLOv2Options,
                      max_instances: int) -> nn.Module:
        """`SOLOv2Decoder` with ``max_instances`` outputs: ``images (N, C, H, W) -> scores
        (N, k) float32, labels (N, k) int64, masks (N, k, H, W) float32`` mask probabilities
        (threshold: ``options.mask_threshold``; zero rows past the instances found)."""
        from segwise.instance.methods.solov2.decode import SOLOv2Decoder

        return SOLOv2Decoder(model, replace(options, max_instances=int(max_instances)))
