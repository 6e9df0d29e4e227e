"""SOLOv2 decoding to fixed-size outputs (the authors' ``get_seg_single``, as tensor algebra).

For each image (all steps batched, no data-dependent shapes, so the module traces and exports):

1. Category probabilities ``sigmoid`` per level, "point NMS": a cell is kept only where it is the
   maximum of its 2 x 2 neighbourhood (max-pool, stride 1), as the authors' code.
2. The ``pre_nms_top_k`` best (cell, class) pairs over all levels; their kernels give mask
   probabilities ``sigmoid(G * F)`` at 1/4 scale, binarised at ``mask_threshold``.
3. Candidates below ``category_threshold`` or whose mask has at most ``min_area`` pixels (1/4
   scale) are dropped. ``min_area`` is the authors' per-level filter ``(8, 8, 16, 32, 32)``,
   scaled by ``(r / 96) ** 2``, ``r`` the upper end of the first scale range (the paper's filter
   for the paper's ranges; smaller for derived ranges: 10 px nuclei have ~6 pixels at 1/4).
4. Score = class probability x "maskness" (mean mask probability inside the binary mask), then
   Matrix NMS (`segwise.instance.matrix_nms`); decayed scores below ``score_threshold`` drop.
5. The ``max_instances`` best mask probabilities are upsampled 4x (bilinear) and cropped to the
   input size (a pixel is inside where the probability is above ``mask_threshold``). Unused rows
   have score 0, label 0 and an all-zero mask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segwise.instance.matrix_nms import matrix_nms
from segwise.instance.methods.solov2.model import SOLOv2Model, flatten_levels, pad_to_divisor

if TYPE_CHECKING:
    from segwise.instance.methods.solov2.options import SOLOv2Options

__all__ = ["PAPER_MIN_AREAS", "SOLOv2Decoder", "point_nms"]

#: the authors' per-level minimum mask area (pixels at 1/4 scale) for the paper's ranges
PAPER_MIN_AREAS = (8.0, 8.0, 16.0, 32.0, 32.0)
#: upper end of the paper's first scale range
_PAPER_FIRST_HI = 96.0


def point_nms(heat: Tensor) -> Tensor:
    """``heat (N, C, S, S)`` with every cell that is not the max of its 2 x 2 window (the cell,
    its left, upper and upper-left neighbours) set to 0."""
    hmax = F.max_pool2d(heat, kernel_size=2, stride=1, padding=1)[..., :-1, :-1]
    return heat * (hmax == heat).to(heat.dtype)


class SOLOv2Decoder(nn.Module):
    """``images -> (scores, labels, masks)`` with SOLOv2 decoding (module docstring).

    Args:
        model: a `SOLOv2Model`.
        options: `SOLOv2Options` (scale ranges resolved or None for the paper's).

    ``forward(images (N, C, H, W))`` returns ``scores (N, k) float32`` (descending, 0 = unused),
    ``labels (N, k) int64`` (0 = unused) and ``masks (N, k, H, W) float32`` mask probabilities
    (0 in unused rows), with ``k = options.max_instances``.
    """

    def __init__(self, model: SOLOv2Model, options: SOLOv2Options) -> None:
        super().__init__()
        from segwise.instance.methods.solov2.options import PAPER_SCALE_RANGES

        self.model = model
        self.options = options
        ranges = options.scale_ranges or PAPER_SCALE_RANGES
        factor = (ranges[0][1] / _PAPER_FIRST_HI) ** 2
        # on the model's device: indexed by the level of each candidate, a CUDA tensor on a
        # GPU (a CPU buffer there raised "indices should be either on cpu or on the same
        # device"); `.to()` of the decoder moves it with the model
        device = next(model.parameters(), torch.empty(0)).device  # CPU if parameterless
        self.register_buffer("min_area", torch.tensor(PAPER_MIN_AREAS, device=device) * factor,
                             persistent=False)  # (levels,)
        # the wrapper takes the model's mode: exporters put the wrapper back into ITS mode
        # afterwards, which would otherwise switch an eval-mode model to training
        self.train(model.training)

    def candidates(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Steps 1-4 (module docstring): the ``k = min(max_instances, pre_nms_top_k * ...)``
        best instances before upsampling.

        Returns:
            ``scores (N, k)`` (descending, 0 = unused), ``labels (N, k)`` (0 = unused) and
            ``probs (N, k, H'/4, W'/4)`` mask probabilities on the padded frame at 1/4 scale.
        """
        opt = self.options
        out = self.model(pad_to_divisor(images, self.model.divisor))
        cate = flatten_levels([point_nms(torch.sigmoid(c.float())) for c in out.categories])
        t, c = cate.shape[1], cate.shape[2]  # (N, T, C)
        # always pre_nms_top_k candidates: zero-score columns appended, so the graph holds for
        # any input size, also one with fewer than pre_nms_top_k (cell, class) pairs
        flat = F.pad(cate.flatten(1), (0, opt.pre_nms_top_k))
        top, index = flat.topk(opt.pre_nms_top_k, dim=1)  # (N, k1), descending
        cells = torch.div(index, c, rounding_mode="floor")
        labels = index - cells * c + 1
        cells = torch.minimum(cells, torch.zeros_like(cells) + (t - 1))  # padding columns
        # level of each candidate's cell (cells are numbered level by level)
        level = torch.zeros_like(cells)
        start = 0
        for m in out.categories[:-1]:
            start = start + m.shape[-2] * m.shape[-1]
            level = level + (cells >= start).long()
        kernels = flatten_levels(out.kernels)  # (N, T, E)
        chosen = torch.gather(kernels, 1, cells[..., None].expand(-1, -1, kernels.shape[-1]))
        probs = torch.sigmoid(SOLOv2Model.masks_for(chosen, out.mask_features).float())
        seg = probs > opt.mask_threshold  # (N, k1, H'/4, W'/4)
        area = seg.flatten(2).sum(-1).float()  # (N, k1)
        maskness = (probs * seg).flatten(2).sum(-1) / area.clamp(min=1.0)
        keep = (top > opt.category_threshold) & (area > self.min_area[level])
        scores = torch.where(keep, top * maskness, torch.zeros_like(top))
        decayed = matrix_nms(seg, labels, scores, kernel=opt.nms_kernel, sigma=opt.nms_sigma,
                             areas=area)
        decayed = torch.where(keep & (decayed >= opt.score_threshold), decayed,
                              torch.zeros_like(decayed))
        final, order = decayed.topk(min(opt.max_instances, opt.pre_nms_top_k), dim=1)
        labels = torch.where(final > 0, torch.gather(labels, 1, order), torch.zeros_like(order))
        picked = torch.gather(probs, 1, order[..., None, None].expand(-1, -1, *probs.shape[-2:]))
        return final, labels, picked

    @staticmethod
    def upsample(probs: Tensor, size: tuple[int, int]) -> Tensor:
        """``(N, K, H'/4, W'/4)`` -> ``(N, K, H, W)``: 4x bilinear, cropped to ``size``."""
        if probs.numel() == 0:  # interpolate refuses empty input (static under a trace)
            return probs.new_zeros((*probs.shape[:2], *size))
        up = F.interpolate(probs, scale_factor=4.0, mode="bilinear", align_corners=False)
        return up[..., : size[0], : size[1]]

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """See the class docstring."""
        h, w = images.shape[-2:]
        final, labels, picked = self.candidates(images)
        used = (final > 0)[..., None, None].to(picked.dtype)
        masks = self.upsample(picked, (h, w)) * used  # probabilities, 0 in unused rows
        extra = self.options.max_instances - final.shape[1]
        if extra > 0:  # fewer candidates than outputs: zero rows
            final = F.pad(final, (0, extra))
            labels = F.pad(labels, (0, extra))
            masks = F.pad(masks, (0, 0, 0, 0, 0, extra))
        return final, labels, masks
