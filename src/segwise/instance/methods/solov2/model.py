"""SOLOv2's network (Wang et al., "SOLOv2: Dynamic and Fast Instance Segmentation", NeurIPS 2020).

``encoder -> FPN (P2..P6) -> {category branch, kernel branch} per level  +  mask feature branch``:

- **Instance head** (paper section 3.2, Fig. 2; shared across levels): level ``l``'s feature map
  is resized to an ``S_l x S_l`` grid (P2 first halved and P6 resized to P5, as the authors' code).
  The *kernel branch* appends two normalised coordinate channels (CoordConv, Liu et al. 2018),
  runs ``stacked_convs`` 3x3 conv-GN-ReLU blocks and a 3x3 conv to ``E`` outputs: the weights of
  one dynamic 1x1 conv per grid cell. The *category branch* runs the same stack (without the
  coordinates) and a 3x3 conv to ``num_classes`` logits per cell (sigmoid, focal loss).
- **Mask feature branch** (section 3.2.2, Fig. 3, "unified mask feature"): P2..P5 each go
  through 3x3 conv-GN-ReLU and bilinear 2x upsamplings until 1/4 scale (P5 gets the coordinate
  channels first), are summed, and a 1x1 conv-GN-ReLU gives ``F``: ``(N, E, H/4, W/4)``.
- **Masks** (eq. 2 of the paper's dynamic scheme): ``M_ij = sigmoid(G_ij * F)``, the 1x1
  convolution of ``F`` with the kernel ``G_ij (E,)`` predicted at grid cell ``(i, j)``.

Initialisation (the authors' code): every conv ``normal(std=0.01)``, zero bias; the category
logits' bias ``-log((1 - 0.01) / 0.01)`` so that every cell starts at probability 0.01 (focal
loss prior, Lin et al. 2017, section 4.1), which keeps the early focal loss from being swamped by
the ~1600 negative cells per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segwise.models.necks import EncoderFPN

__all__ = [
    "SOLOv2Head",
    "SOLOv2MaskBranch",
    "SOLOv2Model",
    "SOLOv2Output",
    "coord_channels",
    "flatten_levels",
    "pad_to_divisor",
]

#: focal-loss prior probability of the category logits at initialisation
_PRIOR = 0.01


def coord_channels(x: Tensor) -> Tensor:
    """Two CoordConv channels for ``x (N, C, H, W)``: ``(N, 2, H, W)``, x then y in [-1, 1]
    (``torch.linspace(-1, 1, n)`` written with ``arange``: torch.export keeps ``n`` symbolic,
    linspace's ``steps`` would be fixed to the trace size)."""
    n, _, h, w = x.shape
    xs, ys = _linspace(w, like=x), _linspace(h, like=x)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy])[None].expand(n, 2, h, w)


def _linspace(steps: Any, *, like: Tensor) -> Tensor:
    """``torch.linspace(-1, 1, steps)`` as ATen computes it (first half from -1, second from 1)."""
    i = torch.arange(steps, device=like.device, dtype=like.dtype)
    last = i[-1].clamp(min=1.0)  # steps - 1 as a tensor (1 for steps == 1: [-1])
    step = 2.0 / last
    return torch.where(i < steps // 2, -1.0 + i * step, 1.0 - (last - i) * step)


def pad_to_divisor(images: Tensor, divisor: int) -> Tensor:
    """Zero-pad ``(N, C, H, W)`` at the bottom/right to multiples of ``divisor`` (always a pad
    op, so a trace keeps the arithmetic and works at any size)."""
    h, w = images.shape[-2:]
    return F.pad(images, (0, (-w) % divisor, 0, (-h) % divisor))


def flatten_levels(maps: Sequence[Tensor]) -> Tensor:
    """Per-level ``(N, D, S, S)`` maps -> ``(N, sum S**2, D)`` (cells level by level, row-major:
    the numbering of `.targets`)."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)


def _conv_gn_relu(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv (no bias) -> GroupNorm (gcd(32, cout) groups) -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(math.gcd(32, cout), cout),
        nn.ReLU(inplace=True),
    )


def _init_normal(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SOLOv2Output(NamedTuple):
    """Raw SOLOv2 outputs for a padded batch ``(N, C, H, W)`` (H, W multiples of 32).

    Attributes:
        categories: one ``(N, num_classes, S, S)`` logit map per level (``S`` = that level's grid).
        kernels: one ``(N, E, S, S)`` map of dynamic 1x1 kernels per level.
        mask_features: ``(N, E, H/4, W/4)`` unified mask feature map ``F``.
    """

    categories: list[Tensor]
    kernels: list[Tensor]
    mask_features: Tensor


class SOLOv2Head(nn.Module):
    """Category and kernel branches, shared across levels (module docstring).

    Args:
        in_channels: FPN channels.
        num_classes: foreground classes.
        grids: ``S`` of each level, e.g. ``(40, 36, 24, 16, 12)``: the grid at the reference
            size (`SOLOv2Model.grid_shapes`).
        kernel_dims: ``E``, the mask feature channels (weights of one dynamic 1x1 kernel).
        channels: channels of the stacked convs (512 in the paper).
        stacked_convs: 3x3 conv-GN-ReLU blocks per branch (4 in the paper).
    """

    def __init__(self, in_channels: int, num_classes: int, *, grids: Sequence[int],
                 kernel_dims: int, channels: int, stacked_convs: int) -> None:
        super().__init__()
        self.grids = tuple(int(s) for s in grids)
        self.kernel_convs = nn.Sequential(*(
            _conv_gn_relu(in_channels + 2 if i == 0 else channels, channels)
            for i in range(stacked_convs)))
        self.category_convs = nn.Sequential(*(
            _conv_gn_relu(in_channels if i == 0 else channels, channels)
            for i in range(stacked_convs)))
        last = channels if stacked_convs else in_channels
        self.kernel_out = nn.Conv2d(last + (2 if not stacked_convs else 0), kernel_dims, 3,
                                    padding=1)
        self.category_out = nn.Conv2d(last, num_classes, 3, padding=1)
        _init_normal(self)
        nn.init.constant_(self.category_out.bias, -math.log((1 - _PRIOR) / _PRIOR))

    def forward(self, features: Sequence[Tensor], shapes: Sequence[tuple[Any, Any]],
                ) -> tuple[list[Tensor], list[Tensor]]:
        """Per-level category logits and kernels.

        Args:
            features: P2..P6, ``(N, in_channels, H/2**l, W/2**l)`` each (one per grid).
            shapes: the ``(S_h, S_w)`` grid of each level (`SOLOv2Model.grid_shapes`).

        Returns:
            ``(categories, kernels)``: lists of ``(N, num_classes, S_h, S_w)`` and
            ``(N, E, S_h, S_w)``.
        """
        if len(features) != len(self.grids):
            raise ValueError(f"got {len(features)} FPN levels for {len(self.grids)} grids")
        categories, kernels = [], []
        last = len(features) - 1
        for level, (feat, shape) in enumerate(zip(features, shapes, strict=True)):
            if level == 0:  # P2 at 1/8, as the authors' code (split_feats)
                feat = F.interpolate(feat, size=(feat.shape[-2] // 2, feat.shape[-1] // 2),
                                     mode="bilinear", align_corners=False)
            elif level == last and last > 0:  # P6 resized to P5
                feat = F.interpolate(feat, size=features[last - 1].shape[-2:], mode="bilinear",
                                     align_corners=False)
            with_coords = torch.cat([feat, coord_channels(feat)], dim=1)  # (N, C + 2, h, w)
            grid = F.interpolate(with_coords, size=shape, mode="bilinear", align_corners=False)
            kernels.append(self.kernel_out(self.kernel_convs(grid)))  # (N, E, S_h, S_w)
            category = self.category_convs(grid[:, :-2])
            categories.append(self.category_out(category))  # (N, num_classes, S_h, S_w)
        return categories, kernels


class SOLOv2MaskBranch(nn.Module):
    """Unified mask feature branch over P2..P5 (module docstring).

    Args:
        in_channels: FPN channels.
        channels: channels inside the branch (128 in the authors' code).
        kernel_dims: ``E``, the output channels.
        levels: how many FPN levels from P2 it fuses (4: P2..P5).
    """

    def __init__(self, in_channels: int, *, channels: int, kernel_dims: int,
                 levels: int = 4) -> None:
        super().__init__()
        self.levels = int(levels)
        self.stages = nn.ModuleList()
        for i in range(self.levels):
            cin = in_channels + (2 if i == self.levels - 1 else 0)  # CoordConv on the deepest
            blocks: list[nn.Module] = [_conv_gn_relu(cin, channels)]
            for j in range(i):
                if j:
                    blocks.append(_conv_gn_relu(channels, channels))
                blocks.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.stages.append(nn.Sequential(*blocks))
        self.out = nn.Sequential(
            nn.Conv2d(channels, kernel_dims, 1, bias=False),
            nn.GroupNorm(math.gcd(32, kernel_dims), kernel_dims),
            nn.ReLU(inplace=True),
        )
        _init_normal(self)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """``features``: P2..P5 ``(N, in_channels, H/2**l, W/2**l)`` -> ``F (N, E, H/4, W/4)``."""
        fused = None
        for i, stage in enumerate(self.stages):
            x = features[i]
            if i == self.levels - 1:
                x = torch.cat([x, coord_channels(x)], dim=1)
            y = stage(x)
            fused = y if fused is None else fused + y
        return self.out(fused)


class SOLOv2Model(nn.Module):
    """Encoder + FPN -> SOLOv2 head and mask branch.

    ``forward(images)`` takes ``(N, C, H, W)`` with H, W multiples of ``divisor`` (the method
    pads) and returns a `SOLOv2Output`. `masks_for` applies the dynamic kernels.

    Args:
        backbone: an `EncoderFPN` with levels (2, 3, 4, 5, 6).
        head: the `SOLOv2Head`.
        mask_branch: the `SOLOv2MaskBranch`.
        grid_reference: the (padded) image side at which level ``l`` has ``S_l x S_l`` cells,
            or None for ``S_l x S_l`` at every size (`grid_shapes`).
    """

    def __init__(self, backbone: EncoderFPN, head: SOLOv2Head,
                 mask_branch: SOLOv2MaskBranch, *, grid_reference: int | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.mask_branch = mask_branch
        self.divisor = max(32, int(backbone.divisor))
        self.grid_reference = None if grid_reference is None else int(grid_reference)

    def grid_shapes(self, height: Any, width: Any) -> list[tuple[Any, Any]]:
        """``(S_h, S_w)`` of each level for a padded input of ``height x width``.

        With ``grid_reference = R``: ``S_h = ceil(S * height / R)``, ``S_w = ceil(S * width / R)``
        (cells keep their size in pixels, so an image larger than the training crops gets more
        cells, not larger ones); without: ``(S, S)`` (the paper, whose images share one scale).
        Integer arithmetic only, so a trace records it for any input size.
        """
        ref = self.grid_reference
        if ref is None:
            return [(s, s) for s in self.head.grids]
        return [((s * height + ref - 1) // ref, (s * width + ref - 1) // ref)
                for s in self.head.grids]

    def forward(self, images: Tensor) -> SOLOv2Output:
        """``images (N, C, H, W)``, H and W multiples of ``divisor`` -> `SOLOv2Output`."""
        pyramid = list(self.backbone(images).values())  # P2..P6
        categories, kernels = self.head(pyramid, self.grid_shapes(*images.shape[-2:]))
        return SOLOv2Output(categories, kernels,
                            self.mask_branch(pyramid[: self.mask_branch.levels]))

    @staticmethod
    def masks_for(kernels: Tensor, mask_features: Tensor) -> Tensor:
        """Mask logits of dynamic 1x1 convolutions.

        Args:
            kernels: ``(N, K, E)``: K kernels per image.
            mask_features: ``(N, E, h, w)``.

        Returns:
            ``(N, K, h, w)`` logits ``G_k * F`` (sigmoid gives the masks).
        """
        n, e, h, w = mask_features.shape
        return torch.bmm(kernels, mask_features.reshape(n, e, h * w)).reshape(n, -1, h, w)
