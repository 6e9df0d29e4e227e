"""Weight initialisation: the one place that says which init each layer segwise builds gets.

Policy (measured in ``benchmarks/ablate_init.py``, figures in ``docs/benchmarks.md``; the
table per architecture is in ``docs/models.md``, "Initialisation"):

- Convolutions followed by a ReLU (decoders, ASPP, FCN/aux head blocks, the textbook U-Net,
  VGG): He et al. 2015 ("Delving deep into rectifiers", eq. 10), weight variance
  ``2 / fan_in`` so activations keep their scale through ReLU layers; biases 0. Decoders use
  the uniform form ``U(-b, b), b = sqrt(6 / fan_in)``, as smp's ``initialize_decoder``; the
  textbook U-Net the Gaussian form ``N(0, 2 / fan_in)`` its paper prescribes (Ronneberger et
  al. 2015, section 3) and the VGG encoders too (torchvision's fan-out variant shrinks the
  forward scale by ``sqrt(3 / 512)`` over VGG's 13 convs without normalisation).
- Normalisation layers (BatchNorm, GroupNorm): scale 1, shift 0.
- Learned up-convolutions (transposed, not followed by a ReLU): ``N(0, 1 / fan_in)`` with the
  fan-in a transposed conv really has, ``in_channels * (kernel / stride)^2`` (He et al. 2015
  with gain 1; PyTorch's own fan computation reads the wrong weight axis for them).
- Classifiers (the last conv, which emits logits; FCN-xs' score_fr): Glorot & Bengio 2010
  uniform (``xavier_uniform_``), bias 0, as smp's ``initialize_head``. FCN's skip score
  layers start at zero (Long et al. 2015), so FCN-16s/8s start as FCN-32s. The default PyTorch init
  (``kaiming_uniform_(a=sqrt(5))``, variance ``1 / (3 fan_in)``) gave logits 2.4x smaller at
  init and a slower start (issue 17).
- Encoders from timm keep timm's initialisation (He, fan-out, and the last BatchNorm of each
  residual block zero-initialised: Goyal et al. 2017, section 5.1); pretrained or local
  weights are loaded after, and replace, any initialisation.
"""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import nn

from segwise._validation import as_enum

__all__ = [
    "Distribution",
    "FanMode",
    "init_classifier",
    "init_relu_convs",
    "init_upconv",
    "init_zero",
]

_NORMS = (nn.BatchNorm2d, nn.GroupNorm)


class Distribution(str, Enum):
    """Shape of He initialisation: ``UNIFORM`` (smp, PyTorch) or ``NORMAL`` (the papers)."""

    UNIFORM = "uniform"
    NORMAL = "normal"


class FanMode(str, Enum):
    """Which fan the He variance ``2 / fan`` divides by: inputs (``FAN_IN``, keeps forward
    activations' scale) or outputs (``FAN_OUT``, keeps gradients' scale; torchvision ResNet/VGG).
    """

    FAN_IN = "fan_in"
    FAN_OUT = "fan_out"


def init_relu_convs(
    module: nn.Module,
    *,
    distribution: Distribution | str = Distribution.UNIFORM,
    mode: FanMode | str = FanMode.FAN_IN,
) -> None:
    """He-initialise every ``Conv2d`` in ``module`` for a following ReLU; reset norms.

    Conv weights get variance ``2 / fan`` (He et al. 2015, eq. 10 / 14), biases 0;
    ``BatchNorm2d``/``GroupNorm`` get scale 1 and shift 0. Transposed convs are handled by
    :func:`init_upconv`; any other layer is left alone.

    Args:
        module: the module whose submodules are initialised (in place).
        distribution: :class:`Distribution`.
        mode: :class:`FanMode`.
    """
    distribution = as_enum(distribution, Distribution, "distribution")
    mode = as_enum(mode, FanMode, "mode")
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if distribution is Distribution.UNIFORM:
                nn.init.kaiming_uniform_(m.weight, mode=mode.value, nonlinearity="relu")
            else:
                nn.init.kaiming_normal_(m.weight, mode=mode.value, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.ConvTranspose2d):
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
