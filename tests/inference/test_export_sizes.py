"""Issue 15: an exported graph gives PyTorch's output at any H, W (pad inside the graph, crop
back), every export is verified at a size not divisible by 32, and a failed export leaves no
file behind."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import segwise
from segwise.inference import (
    ExportError,
    export_onnx,
    export_program,
    export_torchscript,
    verification_sizes,
    verify_export,
)

ODD = (97, 131)  # the size: not a multiple of 2, let alone 32


@pytest.fixture(scope="module")
def stride32_unet():
    """A tiny U-Net (textbook, 5 poolings: output stride 32), eval mode, non-trivial BN."""
    torch.manual_seed(0)
    model = segwise.create_model(
        "unet_textbook", num_classes=3, base_width=4, depth=5, norm="batch"
    ).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model


def test_verification_sizes_include_one_not_divisible_by_32():
    assert verification_sizes((64, 64)) == ((64, 64), (97, 131))
    for size in [(64, 64), (63, 96), (31, 33)]:
        _, (h, w) = verification_sizes(size)
        assert h % 2 == 1 and w % 2 == 1


def test_onnx_traced_at_64_runs_at_97x131(stride32_unet, tmp_path):
    import onnxruntime as ort

    # verify=False: this test checks the graph itself, not the exporter's own check
    path = export_onnx(stride32_unet, tmp_path / "m.onnx", in_channels=3, verify=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, *ODD), (2, 3, 64, 64), (1, 3, 33, 40), (1, 3, 1, 1)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        got = session.run(None, {"image": x.numpy()})[0]  # before: Concat dimension error
        with torch.no_grad():
            expected = stride32_unet(x).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_torchscript_traced_at_64_runs_at_other_sizes(stride32_unet, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        path = export_torchscript(stride32_unet, tmp_path / "m.ts", in_channels=3, verify=False)
        traced = torch.jit.load(str(path))
    for shape in [(1, 3, 96, 80), (2, 3, *ODD)]:  # before: fails at 96x80
        x = torch.rand(shape)
        with torch.no_grad():
            torch.testing.assert_close(traced(x), stride32_unet(x), atol=1e-4, rtol=0)


class _SizeSpecialised(nn.Module):
    """Shape-dependent Python: a trace at 64x64 freezes the branch taken there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.shape[-1] == 64 else x * 3


@pytest.mark.parametrize("exporter", [export_onnx, export_torchscript])
def test_export_that_does_not_generalise_is_refused_and_removed(tmp_path, exporter):
    path = tmp_path / "m.bin"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ExportError, match=r"differ by .* \(\d, 3, 97, 131\)"):
            exporter(_SizeSpecialised(), path, in_channels=3)
    assert not path.exists()  # a retry is not blocked by a partial file


def test_export_crash_is_one_error_naming_the_file_and_leaves_nothing(tmp_path):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom\nsecond line")

    path = tmp_path / "m.onnx"
    expected = r"ONNX export to .*m\.onnx failed \(RuntimeError: boom\)"
    with pytest.raises(ExportError, match=expected):
        export_onnx(Broken(), path, in_channels=3)
    assert not path.exists()


def test_verify_export_names_the_size_that_fails(stride32_unet, tmp_path):
    import copy

    path = export_onnx(stride32_unet, tmp_path / "m.onnx", in_channels=3, verify=False)
    changed = copy.deepcopy(stride32_unet)
    with torch.no_grad():
        list(changed.parameters())[-1].add_(0.5)  # the head's bias: every logit moves by 0.5
    with pytest.raises(ExportError, match=r"onnx and PyTorch differ by 0\.5 .* \(2, 3, 64, 64\)"):
        verify_export(path, changed, sizes=[(64, 64)])


# -- every family x every format, at two sizes (the exporters verify at 64x64 and 97x131) ----

FAMILIES = {
    "unet": {"encoder": "resnet18", "decoder_channels": (16, 16, 8, 8, 8)},
    "unet_textbook": {"base_width": 4},
    "fcn": {"encoder": "resnet18"},
    "fcn32s": {"fc_channels": 16},
    "fcn16s": {"fc_channels": 16},
    "fcn8s": {"fc_channels": 16},
    "deeplabv3": {"encoder": "resnet18", "output_stride": 16},  # os 8 is 3x slower here
    "deeplabv3plus": {"encoder": "resnet18"},
}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported-program"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_and_format_exports_at_any_size(name, fmt, tmp_path):
    torch.manual_seed(0)
    model = segwise.create_model(name, num_classes=3, **FAMILIES[name]).eval()
    exporter = {"onnx": export_onnx, "torchscript": export_torchscript,
                "exported-program": export_program}[fmt]
    path = tmp_path / f"m.{ {'onnx': 'onnx', 'torchscript': 'ts'}.get(fmt, 'pt2') }"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exporter(model, path, in_channels=3, verify=False)
        diff = verify_export(path, model, sizes=[(64, 64), ODD], batch=1)
    assert diff <= 1e-4


def test_onnx_predictor_failure_is_one_error_naming_the_file(unet, tmp_path):
    """A graph that cannot run at some size (this tiny net needs even sizes, like an old export
    traced without the in-graph pad): a ValueError naming the file and the fix."""
    from segwise.inference import OnnxPredictor

    path = export_onnx(unet, tmp_path / "old.onnx", in_channels=3, verify=False)
    predictor = OnnxPredictor(path)
    assert predictor(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"old\.onnx: onnxruntime cannot run it on a "
                                         r"\(1, 3, 33, 35\) input.*export the checkpoint again"):
        predictor(np.zeros((1, 3, 33, 35), np.float32))
