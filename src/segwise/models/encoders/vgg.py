"""VGG-16/19 (with and without batch norm) from timm, with DeepLab-style dilation."""

from __future__ import annotations

import torch
from torch import nn

from segwise.models.encoders.base import OUTPUT_STRIDES, check_output_stride
from segwise.models.init import Distribution, init_relu_convs

__all__ = ["VGG_NAMES", "VGGEncoder"]

_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_VGG19 = (64, 64, "M", 128, 128, "M", *([256] * 4), "M", *([512] * 4), "M", *([512] * 4), "M")
VGG_CONFIGS = {"vgg16": _VGG16, "vgg16_bn": _VGG16, "vgg19": _VGG19, "vgg19_bn": _VGG19}
VGG_NAMES = tuple(VGG_CONFIGS)


def _make_layers(config, in_channels: int, *, batch_norm: bool) -> nn.Sequential:
    """The ``features`` Sequential of torchvision/timm VGG (same module indices and keys)."""
    layers: list[nn.Module] = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGGEncoder(nn.Module):
    """VGG conv layers, returning the output of each of the five max-pools (pool1..pool5).

    timm's VGG cannot dilate, so this wrapper does what DeepLab v1 did (Chen et al. 2015): a
    pool whose stride is removed becomes a 3x3 stride-1 max-pool (padding 1), and every conv
    after it is dilated by the stride removed so far. ``output_stride=16`` changes pool5 only;
    ``8`` changes pool4 and pool5 and dilates conv5_x by 2.

    ``out_channels = (64, 128, 256, 512, 512)``, ``reductions = (2, 4, 8, 16, 32)`` at output
    stride 32 (``(2, 4, 8, 16, 16)`` at 16, ``(2, 4, 8, 8, 8)`` at 8). The fully connected
    layers (fc6/fc7) belong to the FCN decoder, not here. Keys are timm's and torchvision's
    (``features.0.weight`` ...), so their VGG state_dicts load as the "backbone" layout.

    Args:
        name: one of :data:`VGG_NAMES`.
        in_channels: input channels (first conv adapted by timm when pretrained).
        output_stride: 8, 16 or 32.
        pretrained: load timm's ImageNet weights (torchvision's, ``tv_in1k``).
    """

    native_prefix = ""

    def __init__(
        self, name: str, *, in_channels: int = 3, output_stride: int = 32, pretrained: bool = False
    ) -> None:
        super().__init__()
        if name not in VGG_CONFIGS:
            raise ValueError(f"encoder={name!r} is not valid; expected one of: {VGG_NAMES}")
        check_output_stride(output_stride, name, OUTPUT_STRIDES)
        # built here, not with timm.create_model: timm's VGG also builds fc6/fc7 (119 M
        # parameters) that an encoder never uses
        self.features = _make_layers(
            VGG_CONFIGS[name], in_channels, batch_norm=name.endswith("_bn")
        )
        # He et al. 2015, N(0, 2 / fan_in), biases 0: keeps the forward scale through 13 convs
        # without norm (torchvision's fan_out shrinks it by sqrt(3 / 512) from RGB to conv5);
        # the _bn variants get the same before each BN (segwise.models.init)
        init_relu_convs(self.features, distribution=Distribution.NORMAL)
        if pretrained:
            self._load_imagenet(name)
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self._pools = tuple(pools)
        reductions, stride, dilation = [], 1, 1
        for i, module in enumerate(self.features):
            if isinstance(module, nn.Conv2d) and dilation > 1:
                module.dilation, module.padding = (dilation, dilation), (dilation, dilation)
            if isinstance(module, nn.MaxPool2d):
                if stride * 2 > output_stride:
                    self.features[i] = nn.MaxPool2d(3, stride=1, padding=1)
                    dilation *= 2
                else:
                    stride *= 2
                reductions.append(stride)
        self.out_channels: tuple[int, ...] = (64, 128, 256, 512, 512)
        self.reductions: tuple[int, ...] = tuple(reductions)
        self.divisor = max(self.reductions)

    def _load_imagenet(self, name: str) -> None:
        """timm's ImageNet weights (torchvision's ``tv_in1k``), first conv adapted if needed."""
        from segwise.models.weights import (
            adapt_input_channels,
            fetch_timm_weights,
            load_state_dict_file,
        )

        state = load_state_dict_file(fetch_timm_weights(name))
        state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict(adapt_input_channels(state, self.features.state_dict()))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x: (N, in_channels, H, W)`` -> ``[pool1, ..., pool5]``, high to low resolution."""
        features = []
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self._pools:
                features.append(x)
        return features
