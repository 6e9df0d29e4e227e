"""Weight initialisation: the one place that says which init each layer segwise builds gets.

Policy (measured in ``benchmarks/ablate_init.py``, figures in ``docs/benchmarks.md``,
"Initialisation and convergence"; the table per layer is in ``docs/models.md``):

- Convolutions that feed a ReLU, directly or through a normalisation layer (the U-Net blocks,
  ASPP branches, DeepLab and FCN decoder and head blocks, the textbook U-Net and VGG, FCN
  fc6/fc7, the ASPP image-pooling conv): He et al. 2015 ("Delving deep into rectifiers",
  eq. 10), weight variance ``2 / fan_in``; biases 0. Uniform form ``U(-b, b), b = sqrt(6 /
  fan_in)`` (smp's ``initialize_decoder``; torchvision's and timm's ResNets use He too),
  Gaussian ``N(0, 2 / fan_in)`` where a paper prescribes it (the textbook U-Net: Ronneberger
  et al. 2015, section 3; VGG). Where a norm follows, the weights' scale does not change the
  forward pass (Ioffe & Szegedy 2015, section 3); it sets how far an AdamW step moves the
  weights relative to their size (Hoffer et al. 2018, "Norm matters"). PyTorch's default
  (``kaiming_uniform_(a=sqrt(5))``, variance ``1 / (3 fan_in)``, 6x smaller) was segwise's
  choice for norm-followed convs until the 200-step and GPU runs of issue 17: it led by
  0.03 at 60 steps of 64x64 crops (within noise) and fell behind He at 200 steps of 128x128
  crops in every seed measured and behind smp at 16x512x512 on an H200.
- Normalisation layers: scale 1, shift 0.
- Learned up-convolutions (transposed, no ReLU after): ``N(0, 1 / fan_in)`` with the fan-in a
  transposed conv really has, ``in_channels * (kernel / stride)^2`` (He et al. 2015 with gain
  1; PyTorch's own fan computation reads the output-channel axis for them).
- Classifiers (the conv that emits logits; FCN-xs' score_fr): Glorot & Bengio 2010 uniform,
  bias 0, as smp's ``initialize_head``. PyTorch's default here gave logits 2.4x smaller at init
  and the slowest start of all arms (issue 17). FCN's skip score layers start at zero (Long et
  al. 2015), so FCN-16s/8s start as FCN-32s.
- Encoders from timm keep timm's initialisation (He, fan-out, and the last BatchNorm of each
  residual block zero-initialised: Goyal et al. 2017, section 5.1; against torchvision's 1,
  the same draws otherwise, -0.003 ± 0.034 in the U-Net's loss over 8 seeds: no effect).
  Pretrained or local weights are loaded after, and replace, any initialisation.
"""

from __future__ import annotations

import itertools
import math
from enum import Enum

import torch
from torch import nn

from segwise._validation import as_enum

__all__ = [
    "Distribution",
    "init_classifier",
    "init_relu_convs",
    "init_upconv",
    "init_zero",
    "norm_followed_convs",
]

_CONVS = (nn.Conv2d, nn.Conv3d)  # 3D: the volume models (segwise.models.volumetric)
_UPCONVS = (nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.BatchNorm3d, nn.InstanceNorm3d)


class Distribution(str, Enum):
    """Shape of He initialisation: ``UNIFORM`` (smp, PyTorch) or ``NORMAL`` (the papers)."""

    UNIFORM = "uniform"
    NORMAL = "normal"


def norm_followed_convs(module: nn.Module) -> set[nn.Conv2d]:
    """The ``Conv2d`` layers of ``module`` whose output goes straight into a norm layer.

    Read from ``nn.Sequential`` order: every conv inside the child just before a
    BatchNorm/GroupNorm/InstanceNorm child (so both convs of a depthwise-separable pair count).
    """
    found: set[nn.Conv2d] = set()
    for seq in module.modules():
        if isinstance(seq, nn.Sequential):
            children = list(seq.children())
            for before, after in itertools.pairwise(children):
                if isinstance(after, _NORMS):
                    found |= {c for c in before.modules() if isinstance(c, _CONVS)}
    return found


def init_relu_convs(
    module: nn.Module, *, distribution: Distribution | str = Distribution.UNIFORM
) -> None:
    """Initialise every ``Conv2d`` of ``module`` that feeds a ReLU; reset norms (in place).

    Every ``Conv2d`` gets He et al. 2015 (variance ``2 / fan_in``, eq. 10) in
    ``distribution``'s form, whether a norm layer follows it or not (see the module docstring
    for why). Biases 0; affine norm layers scale 1, shift 0; transposed convs
    :func:`init_upconv`. Classifiers are re-initialised after by :func:`init_classifier`.

    Args:
        module: the module whose submodules are initialised.
        distribution: :class:`Distribution` of the He init.

    Raises:
        ValueError: ``distribution`` is not a :class:`Distribution` value.
    """
    distribution = as_enum(distribution, Distribution, "distribution")
    for m in module.modules():
        if isinstance(m, _CONVS):
            if distribution is Distribution.UNIFORM:
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _UPCONVS):
            init_upconv(m)
        elif isinstance(m, _NORMS) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_upconv(conv: nn.ConvTranspose2d) -> None:
    """``N(0, 1 / n)`` with ``n = in_channels * prod(kernel / stride)``: the inputs each output
    pixel of a transposed conv really sums (He et al. 2015 with gain 1: no ReLU follows)."""
    taps = math.prod(max(1, k // s) for k, s in zip(conv.kernel_size, conv.stride, strict=True))
    fan_in = conv.in_channels // conv.groups * taps
    nn.init.normal_(conv.weight, 0.0, 1.0 / math.sqrt(fan_in))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def init_classifier(conv: nn.Conv2d) -> None:
    """Glorot & Bengio 2010 uniform weight, zero bias: the layer that emits logits (smp's
    ``initialize_head``). Logit std at init is then about ``sqrt(fan_in * 2 / (fan_in +
    fan_out) * E[x^2])``, close to 1 for ReLU features of unit variance and few classes."""
    nn.init.xavier_uniform_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


@torch.no_grad()
def init_zero(conv: nn.Conv2d) -> None:
    """Zero weight and bias: FCN's skip score layers (Long et al. 2015, section 4.1: "we
    zero-initialize the class scoring layer"), so a skip starts as a no-op."""
    conv.weight.zero_()
    if conv.bias is not None:
        conv.bias.zero_()
