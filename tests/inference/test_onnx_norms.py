"""GroupNorm / InstanceNorm in ONNX exports: the axis-by-axis statistics of
`segwise.inference.onnx_norms` compute the same function, and onnxruntime runs them as
precisely as PyTorch's float32 (against a float64 reference)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from segwise.inference.onnx_norms import AxiswiseGroupNorm, precise_norms


@pytest.mark.parametrize(("groups", "channels", "affine"), [(1, 6, True), (3, 6, True),
                                                            (6, 6, False), (2, 8, True)])
def test_axiswise_group_norm_is_group_norm(groups, channels, affine):
    torch.manual_seed(0)
    norm = nn.GroupNorm(groups, channels, affine=affine).double()
    if affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 2.0)
            norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, channels, 5, 7, dtype=torch.float64) * 3 + 2
    ours = AxiswiseGroupNorm(groups, norm.eps, norm.weight, norm.bias)
    torch.testing.assert_close(ours(x), norm(x), rtol=0, atol=1e-12)


def test_instance_norm_is_swapped_only_with_instance_statistics():
    stats = nn.InstanceNorm2d(4, affine=True, track_running_stats=True).eval()
    model = nn.Sequential(nn.InstanceNorm2d(4, affine=True), stats, nn.GroupNorm(2, 4))
    x = torch.randn(2, 4, 6, 5)
    with torch.no_grad():
        expected = model(x)
    with precise_norms(model) as swapped, torch.no_grad():
        assert [type(m) for m in swapped] == [AxiswiseGroupNorm, nn.InstanceNorm2d,
                                             AxiswiseGroupNorm]
        assert swapped[0].weight is model[0].weight  # shared, not copied
        torch.testing.assert_close(swapped(x), expected, rtol=1e-5, atol=1e-5)
    assert [type(m) for m in model] == [nn.InstanceNorm2d, nn.InstanceNorm2d, nn.GroupNorm]
    unbatched = torch.randn(4, 6, 5)  # InstanceNorm2d takes (C, H, W) too
    with precise_norms(nn.Sequential(nn.InstanceNorm2d(4))) as swapped, torch.no_grad():
        torch.testing.assert_close(swapped(unbatched), nn.InstanceNorm2d(4)(unbatched))


def test_layers_are_restored_when_the_block_fails():
    inner = nn.GroupNorm(2, 4)
    model = nn.Sequential(nn.Sequential(inner))
    with pytest.raises(RuntimeError, match="trace failed"), precise_norms(model):
        raise RuntimeError("trace failed")
    assert model[0][0] is inner


def _onnx_error(model: nn.Module, x: torch.Tensor, *, swap: bool) -> float:
    import onnxruntime as ort

    buffer = io.BytesIO()
    with precise_norms(model) if swap else torch.no_grad():
        torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["x"],
                          opset_version=17, dynamic_axes={"x": {2: "h", 3: "w"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        reference = model.double()(x.double()).numpy()
    model.float()
    return float(np.abs(got - reference).max())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_exported_group_norm_is_as_precise_as_pytorch():
    """One group over 64 channels of a 192x256 map, centred away from 0 (a conv bias of 3):
    the statistics of 3.1 M values. onnxruntime's InstanceNormalization was 4e-5 off float64
    at 97x131 and 1.6e-3 at 360x480 where PyTorch's float32 is at 2-3e-6."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.GroupNorm(1, 64)).eval()
    with torch.no_grad():
        model[0].bias.fill_(3.0)
    x = torch.rand(1, 3, 192, 256)
    with torch.no_grad():
        torch_error = float((model(x).double() - model.double()(x.double())).abs().max())
    model.float()
    assert _onnx_error(model, x, swap=True) < max(4 * torch_error, 1e-5)
