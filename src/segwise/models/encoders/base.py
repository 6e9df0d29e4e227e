"""The Encoder contract, shared by every backbone in :mod:`segwise.models.encoders`.

An encoder is an ``nn.Module`` with these attributes:

- ``out_channels: tuple[int, ...]`` - channels of each returned feature map;
- ``reductions: tuple[int, ...]`` - each feature map's stride w.r.t. the input (its *effective*
  stride: with ``output_stride=8`` a ResNet reports ``(2, 4, 8, 8, 8)``);
- ``divisor: int`` - input H and W must be multiples of it (the model pads to it);
- ``native_prefix: str`` - prefix that turns the backbone's own state_dict keys (e.g. a timm
  checkpoint) into this module's keys (``"backbone."`` for timm wrappers, ``""`` otherwise).

``forward(x)`` takes ``x: (N, in_channels, H, W)`` with H, W multiples of ``divisor`` and
returns a ``list`` of feature maps **ordered from high to low resolution** (increasing
``reductions``, non-decreasing once dilation replaces strides); feature ``i`` has shape
``(N, out_channels[i], H // reductions[i], W // reductions[i])``. The input itself is not
included. Decoders pick features by reduction, never by position, so an encoder that starts at
stride 1 (the textbook U-Net) or 4 (ConvNeXt) works with every decoder.
"""

from __future__ import annotations

__all__ = ["OUTPUT_STRIDES", "check_output_stride"]

OUTPUT_STRIDES = (8, 16, 32)


def check_output_stride(output_stride: int, name: str, allowed: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``output_stride`` is one the encoder ``name`` supports."""
    if output_stride not in allowed:
        raise ValueError(
            f"output_stride={output_stride!r} is not valid for encoder {name!r}; "
            f"expected one of: {', '.join(map(str, allowed))}"
        )
