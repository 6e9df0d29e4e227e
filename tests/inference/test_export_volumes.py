"""ONNX export of a run trained on volumes: dynamic batch, depth, height and width, verified
against PyTorch at the patch and an odd larger size, the data description in the metadata,
and ``segwise predict --onnx`` equal to the checkpoint's prediction (issue 26)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import segwise
from segwise.cli.main import main
from segwise.inference import export_onnx, verification_sizes, verify_export
from segwise.inference.onnx_norms import AxiswiseGroupNorm, precise_norms
from segwise.models import create_model

from .volume_runs import volume_run, write_volume


def test_verification_sizes_of_volumes_are_the_patch_and_an_odd_one_half_again():
    assert verification_sizes((16, 32, 32)) == ((16, 32, 32), (25, 49, 49))
    assert verification_sizes((8, 12, 20)) == ((8, 12, 20), (13, 19, 31))
    assert verification_sizes((64, 64)) == ((64, 64), (97, 131))  # images: as before


def test_axiswise_group_norm_on_volumes_and_instance_norm_3d_swapped():
    torch.manual_seed(0)
    norm = nn.GroupNorm(2, 6).double()
    x = torch.randn(2, 6, 3, 5, 4, dtype=torch.float64) * 3 + 2
    ours = AxiswiseGroupNorm(2, norm.eps, norm.weight, norm.bias)
    torch.testing.assert_close(ours(x), norm(x), rtol=0, atol=1e-12)
    model = nn.Sequential(nn.InstanceNorm3d(4, affine=True))
    v = torch.randn(2, 4, 3, 5, 6)
    with torch.no_grad():
        expected = model(v)
    with precise_norms(model) as swapped, torch.no_grad():
        assert isinstance(swapped[0], AxiswiseGroupNorm)
        torch.testing.assert_close(swapped(v), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(swapped(v[0]), expected[0], rtol=1e-5, atol=1e-5)
    assert isinstance(model[0], nn.InstanceNorm3d)


def test_library_export_of_a_3d_model_runs_at_other_volume_sizes(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_model("resenc_unet3d", encoder="resenc_unet3d", in_channels=1,
                         num_classes=2, base_width=4, depth=2).eval()  # instance norms
    path = export_onnx(model, tmp_path / "m.onnx", in_channels=1, head="labels",
                       sample_size=(8, 12, 16))
    diff = verify_export(path, model, sizes=[(8, 12, 16), (13, 19, 25), (5, 7, 9)], batch=2)
    assert diff <= 1e-4


def test_cli_export_of_a_volume_run_is_verified_at_two_sizes_and_predicts_alike(tmp_path,
                                                                                capsys):
    pytest.importorskip("onnxruntime")
    import onnx

    run = volume_run(tmp_path / "run", patch=(16, 16, 16))
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and "at 16x16x16 and 25x25x25" in printed
    assert "normalised by the run's rule (zscore: recorded in segwise.data_info" in printed
    model = onnx.load(str(out))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "depth", "height", "width"]
    props = {p.key: p.value for p in model.metadata_props}
    info = json.loads(props["segwise.data_info"])
    assert info["spatial_dims"] == 3 and info["spacing"] == [0.7, 0.9, 2.5]
    assert info["normalization"] == "zscore"
    assert json.loads(props["segwise.patch_size"]) == [16, 16, 16]
    assert props["segwise.mean"] == "null"  # the rule is applied outside the graph

    volume = write_volume(tmp_path / "v.nii.gz", (19, 23, 29))
    from_onnx = segwise.load_predictor(out).predict_volume(volume, probabilities=True)
    from_run = segwise.load_predictor(run, device="cpu").predict_volume(volume,
                                                                         probabilities=True)
    np.testing.assert_allclose(from_onnx.probabilities, from_run.probabilities, atol=1e-4)
    assert (from_onnx.labels == from_run.labels).mean() > 0.999  # ties at float rounding only


def test_cli_export_size_must_fit_the_run(tmp_path, capsys):
    run = volume_run(tmp_path / "run", patch=(8, 8, 8))
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(run), "--out", str(out), "--size", "64x64"]) == 2
    assert "write DxHxW (a run trained on volumes)" in capsys.readouterr().err
    assert not out.exists()
