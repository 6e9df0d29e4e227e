"""Export: ONNX (dynamic axes, baked-in normalisation and heads), TorchScript, torch.export, and
an onnxruntime-only predictor that needs no PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from segwise.inference import (
    ExportError,
    ExportHead,
    OnnxPredictor,
    export_onnx,
    export_program,
    export_torchscript,
    read_onnx_metadata,
    verify_onnx,
)
from segwise.labels import LabelSpace

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def _normalised(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@pytest.mark.parametrize("head", list(ExportHead))
def test_onnx_heads_with_baked_normalisation_and_dynamic_axes(unet, tmp_path, head):
    import onnxruntime as ort

    path = export_onnx(unet, tmp_path / "m.onnx", in_channels=3, mean=MEAN, std=STD, head=head)
    meta = read_onnx_metadata(path)
    assert meta["head"] == head and meta["mean"] == MEAN and meta["in_channels"] == 3
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (3, 3, 40, 96)]:  # batch, height and width all change
        raw = torch.rand(shape)
        got = session.run(None, {"image": raw.numpy()})[0]
        with torch.no_grad():
            logits = unet(_normalised(raw))
        if head == ExportHead.LOGITS:
            np.testing.assert_allclose(got, logits.numpy(), atol=1e-4)
        elif head == ExportHead.PROBABILITIES:
            np.testing.assert_allclose(got, logits.softmax(1).numpy(), atol=1e-5)
        else:
            assert got.dtype == np.int64 and got.shape == (shape[0], *shape[2:])
            assert (got == logits.argmax(1).numpy()).mean() > 0.999
    assert verify_onnx(path, unet, torch.rand(2, 3, 48, 80)) <= 1e-4


@pytest.mark.parametrize(
    ("task", "channels", "label_shape"),
    [("binary", 1, (2, 32, 32)), ("multilabel", 3, (2, 3, 32, 32))],
)
def test_onnx_label_heads_for_sigmoid_tasks(tmp_path, task, channels, label_shape):
    model = torch.nn.Conv2d(3, channels, 3, padding=1).eval()
    labels = LabelSpace.for_channels(channels, task=task)
    path = export_onnx(model, tmp_path / "m.onnx", in_channels=3, head="labels", labels=labels)
    x = torch.randn(2, 3, 32, 32)
    got = OnnxPredictor(path)(x.numpy())
    with torch.no_grad():
        expected = (model(x).sigmoid() > 0.5).long()
    expected = expected[:, 0] if task == "binary" else expected
    assert got.shape == label_shape
    np.testing.assert_array_equal(got, expected.numpy())
    verify_onnx(path, model, x)


def test_verify_onnx_raises_when_the_models_differ(unet, tmp_path):
    path = export_onnx(unet, tmp_path / "m.onnx", in_channels=3)
    with torch.no_grad():
        unet.head.bias.add_(0.1)
    with pytest.raises(ExportError, match="differ by"):
        verify_onnx(path, unet, torch.rand(1, 3, 32, 32), atol=1e-3)


def test_onnx_predictor_runs_without_torch(unet, tmp_path):
    path = export_onnx(
        unet, tmp_path / "m.onnx", in_channels=3, mean=MEAN, std=STD, head="probabilities"
    )
    raw = torch.rand(2, 3, 48, 64)
    np.save(tmp_path / "raw.npy", raw.numpy())
    with torch.no_grad():
        expected = unet(_normalised(raw)).argmax(1).numpy()
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from segwise.inference.onnx_predictor import OnnxPredictor
        predictor = OnnxPredictor({str(path)!r}, threads=1)
        labels = predictor.predict_labels(np.load({str(tmp_path / "raw.npy")!r}))
        np.save({str(tmp_path / "labels.npy")!r}, labels)
        print(json.dumps({{"torch": "torch" in sys.modules, "head": predictor.head.value}}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    assert report == {"torch": False, "head": "probabilities"}
    labels = np.load(tmp_path / "labels.npy")
    assert labels.shape == (2, 48, 64) and (labels == expected).mean() > 0.999


def test_onnx_predictor_errors(tmp_path, unet):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxPredictor(tmp_path / "missing.onnx")
    predictor = OnnxPredictor(export_onnx(unet, tmp_path / "m.onnx", in_channels=3))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        predictor(np.zeros((32, 32, 3), dtype=np.float32))


def test_torchscript(unet, tmp_path):
    x = torch.rand(3, 3, 48, 80)  # another batch and size than the export sample
    with torch.no_grad():
        expected = unet(_normalised(x)).softmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in torch 2.14
        path = export_torchscript(
            unet, tmp_path / "m.ts", in_channels=3, mean=MEAN, std=STD, head="probabilities"
        )
        ts = torch.jit.load(str(path))
        torch.testing.assert_close(ts(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_exported_program(unet, tmp_path):
    x = torch.rand(3, 3, 48, 80)  # another batch and size than the export sample
    with torch.no_grad():
        expected = unet(_normalised(x)).argmax(1)
    path = export_program(
        unet, tmp_path / "m.pt2", in_channels=3, mean=MEAN, std=STD, head="labels"
    )
    program = torch.export.load(str(path))
    got = program.module()(x)
    assert got.dtype == torch.int64 and (got == expected).float().mean() > 0.999


def test_bad_export_arguments(unet, tmp_path):
    with pytest.raises(ValueError, match="both mean and std"):
        export_onnx(unet, tmp_path / "m.onnx", in_channels=3, mean=MEAN)
    with pytest.raises(ValueError, match="one value per input channel"):
        export_onnx(unet, tmp_path / "m.onnx", in_channels=3, mean=[0.5], std=[0.2])
    with pytest.raises(ValueError, match="head='mask'"):
        export_onnx(unet, tmp_path / "m.onnx", in_channels=3, head="mask")


def test_importing_the_package_does_not_import_torch():
    code = "import sys, segwise.inference, segwise.inferers.options; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
