"""FPN neck over the encoder contract: shapes per level, extra levels, errors, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from segwise.models.necks import FPN, ExtraLevels, build_encoder_fpn


class _FakeEncoder(torch.nn.Module):
    """Encoder-contract stand-in: features at the given strides, constant channel counts."""

    def __init__(self, reductions=(2, 4, 8, 16, 32), channels=(3, 5, 7, 9, 11)):
        super().__init__()
        self.reductions, self.out_channels, self.divisor = reductions, channels, max(reductions)
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(3, c, 1) for c in channels)

    def forward(self, x):
        return [conv(x[..., ::r, ::r]) for conv, r in zip(self.convs, self.reductions, strict=True)]


@pytest.mark.parametrize("levels", [(2, 3, 4, 5, 6), (3, 4, 5, 6, 7), (2, 3, 4, 5)])
def test_shapes_per_level(levels):
    enc = _FakeEncoder()
    fpn = FPN(enc.out_channels, enc.reductions, levels=levels, out_channels=8)
    out = fpn(enc(torch.randn(2, 3, 64, 96)))
    assert list(out) == [f"p{lv}" for lv in levels]
    for lv in levels:
        assert out[f"p{lv}"].shape == (2, 8, math.ceil(64 / 2**lv), math.ceil(96 / 2**lv))


def test_default_extra_rule_and_maxpool_p6():
    enc = _FakeEncoder()
    fpn = FPN(enc.out_channels, enc.reductions, levels=(2, 3, 4, 5, 6), out_channels=4)
    assert fpn.extra is ExtraLevels.MAXPOOL and len(fpn.extra_convs) == 0
    out = fpn(enc(torch.randn(1, 3, 64, 64)))
    # P6 = max-pool with kernel 1, stride 2 of P5: every other pixel of P5
    torch.testing.assert_close(out["p6"], out["p5"][..., ::2, ::2])
    fpn7 = FPN(enc.out_channels, enc.reductions, levels=(3, 4, 5, 6, 7), out_channels=4)
    assert fpn7.extra is ExtraLevels.CONV and len(fpn7.extra_convs) == 2


def test_dilated_encoder_uses_deepest_feature_of_a_stride():
    # output stride 8: strides (2, 4, 8, 8, 8); level 3 must read the last stride-8 feature
    enc = _FakeEncoder(reductions=(2, 4, 8, 8, 8))
    fpn = FPN(enc.out_channels, enc.reductions, levels=(2, 3), out_channels=4)
    assert fpn._indices == [1, 4]


def test_missing_stride_is_refused_by_name():
    enc = _FakeEncoder(reductions=(1, 2, 4, 8, 16))
    with pytest.raises(ValueError, match=r"stride 32.*\(1, 2, 4, 8, 16\)"):
        FPN(enc.out_channels, enc.reductions, levels=(2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="consecutive"):
        FPN(enc.out_channels, enc.reductions, levels=(2, 4))
    with pytest.raises(ValueError, match="encoder 'unet_textbook' cannot feed an FPN"):
        build_encoder_fpn("unet_textbook")


def test_real_encoder_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_encoder_fpn("resnet18", levels=(3, 4, 5, 6, 7), out_channels=16)
    out = model(torch.randn(1, 3, 64, 96))
    sum(v.square().mean() for v in out.values()).backward()
    # every parameter is in the graph; the neck's gradients are non-zero (the encoder's conv
    # before a zero-initialised BatchNorm scale gets an exact-zero gradient at step 0, by timm's
    # design, so only "reached" is asserted there)
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert all(p.grad.any() for p in model.fpn.parameters())
    with pytest.raises(ValueError, match="multiple of the encoder's divisor 32"):
        model(torch.randn(1, 3, 63, 96))
