"""ONNX export (checked with onnxruntime), channels_last, bf16 autocast, torch.compile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segwise.models import create_model


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize(
    ("name", "encoder", "options"),
    [
        ("unet", "resnet18", {}),
        ("deeplabv3plus", "resnet18", {"output_stride": 16}),
        ("fcn8s", "vgg16", {"fc_channels": 16}),
    ],
)
def test_onnx_export_matches_pytorch(tmp_path, name, encoder, options):
    """Traced export: the padding amounts are frozen for the traced size (export per size)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = create_model(name, encoder=encoder, num_classes=3, **options).eval()
    x = torch.randn(1, 3, 45, 61)
    path = tmp_path / "model.onnx"
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        opset_version=17,
    )
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert got.shape == (1, 3, 45, 61)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_channels_last_gives_the_same_logits():
    model = create_model("deeplabv3plus", encoder="resnet18", num_classes=3).eval()
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_trains_on_cpu():
    model = create_model("unet", encoder="resnet18", num_classes=3)
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.bfloat16
    assert logits.shape == (2, 3, 32, 32)
    logits.float().mean().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unet", "deeplabv3plus"])
def test_torch_compile_without_graph_breaks(name):
    """``fullgraph=True`` fails on any graph break; aot_eager avoids needing a C++ compiler."""
    model = create_model(name, encoder="resnet18", num_classes=2).eval()
    x = torch.randn(1, 3, 33, 47)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
