"""`torch.export` programs of instance models (`segwise.inference.instance_program`): dynamic
height and width where the graph allows it (YOLACT), else one fixed size with the model line that
forced it, and other sizes refused by `load_instance_program`."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from segwise.inference.deploy import InstanceDeployModule
from segwise.inference.instance_program import (
    ProgramShape,
    load_instance_program,
    write_program,
)


class _Ramp(nn.Module):
    """A toy instance export module: ``masks = mean(image) * ramp over the width``, 2 slots.

    ``pin=True`` builds the ramp with ``torch.linspace(..., steps=w)``, whose ``steps`` is a plain
    int: torch.export fixes ``w`` to the trace's. ``pin=False`` builds the same kind of ramp
    with ``arange``, which stays symbolic.
    """

    def __init__(self, *, pin: bool) -> None:
        super().__init__()
        self.pin = pin

    def forward(self, images: torch.Tensor):
        n, _, h, w = images.shape
        if self.pin:
            ramp = torch.linspace(0.0, 1.0, w)
        else:
            ramp = torch.arange(w, dtype=images.dtype) / 8.0
        masks = (images.mean(1, keepdim=True) * ramp).expand(n, 2, h, w)
        scores = masks.flatten(2).amax(-1)
        return scores, torch.ones_like(scores, dtype=torch.int64), masks


def _write(tmp_path, *, pin: bool):
    deploy = InstanceDeployModule(_Ramp(pin=pin), in_channels=3, mean=(0.5, 0.5, 0.5),
                                  std=(0.25, 0.25, 0.25), method="toy", max_instances=2).eval()
    path = tmp_path / f"toy-{pin}.pt2"
    shape = write_program(deploy, path, in_channels=3, sample_size=(16, 24),
                          metadata=deploy.metadata())
    return deploy, path, shape


def test_symbolic_sizes_give_a_program_for_any_size(tmp_path):
    deploy, path, shape = _write(tmp_path, pin=False)
    assert shape == ProgramShape(fixed_size=None, reason="")
    program = load_instance_program(path)
    assert program.shape.fixed_size is None and program.in_channels == 3
    for size in ((16, 24), (5, 41)):  # not the trace size, batch 1 (traced with 2)
        image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
        got, expected = program(image), deploy(image)
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e)


def test_a_pinned_size_is_fixed_recorded_with_its_line_and_refused_elsewhere(tmp_path):
    deploy, path, shape = _write(tmp_path, pin=True)
    assert shape.fixed_size == (16, 24)
    # the reason names the model line that pinned the width, found while tracing
    assert "test_export_instance_program.py" in shape.reason
    assert "torch.linspace(0.0, 1.0, w)" in shape.reason
    assert "refused a 49x91 image" in shape.reason  # the probe: verification_sizes((16, 24))[1]

    program = load_instance_program(path)
    assert program.shape == shape
    assert json.loads(program.metadata["segwise.fixed_size"]) == [16, 24]
    image = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    for g, e in zip(program(image), deploy(image), strict=True):
        torch.testing.assert_close(g, e)
    with pytest.raises(ValueError, match=r"fixed to 16x24 images and got 20x30: .*linspace.*"
                                         r"--size 20x30.*--format onnx"):
        program(torch.rand(1, 3, 20, 30))
    with pytest.raises(ValueError, match=r"takes images \(N, 3, H, W\); got \(3, 16, 24\)"):
        program(torch.rand(3, 16, 24))


def test_semantic_and_foreign_programs_are_refused_clearly(tmp_path):
    from segwise.inference.export import export_program

    semantic = tmp_path / "semantic.pt2"
    export_program(nn.Conv2d(3, 2, 1), semantic, in_channels=3, verify=False)
    with pytest.raises(ValueError, match="semantic model, not an instance export"):
        load_instance_program(semantic)
    foreign = tmp_path / "foreign.pt2"
    torch.export.save(torch.export.export(nn.Identity(), (torch.rand(1, 3, 4, 4),)), str(foreign))
    with pytest.raises(ValueError, match="no segwise metadata"):
        load_instance_program(foreign)


@pytest.mark.slow
def test_yolact_program_with_decoding_takes_any_size(tmp_path):
    """YOLACT (tiny heads, thresholds 0 so that the slots hold real detections) as a program
    with free height and width: equal to PyTorch at sizes and a batch other than the trace's."""
    from segwise.inference.instance_export import export_instance, instance_export_module
    from segwise.instance.methods import get_method, options_from_mapping

    options = {"fpn_channels": 16, "num_prototypes": 4, "anchor_sizes": [8, 12, 16, 24, 32],
               "top_k": 20, "score_threshold": 0.0}
    spec = get_method("yolact")
    torch.manual_seed(0)
    model = spec.build(encoder="resnet18", in_channels=3, num_classes=1, weights=None,
                       options=options_from_mapping(spec.options_type, options, method="yolact"))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    done = export_instance(model, tmp_path / "yolact.pt2", method="yolact", in_channels=3,
                           options=options, max_instances=5, mean=mean, std=std,
                           format="exported-program", verify=False)  # verified below
    assert done.fixed_size is None and done.fixed_size_reason == ""
    program = load_instance_program(done.path)
    assert program.shape.fixed_size is None
    assert program.metadata["segwise.method"] == "yolact"
    module, _ = instance_export_module(model.eval(), method="yolact", options=options,
                                       max_instances=5)
    g = torch.Generator().manual_seed(3)
    # 50x70: P7 is 1 x 1 (the head's flatten used to add a guard refusing that); 97x131: odd
    for batch, size in ((1, (50, 70)), (2, (97, 131))):
        raw = torch.rand(batch, 3, *size, generator=g)
        with torch.no_grad():
            scores, labels, masks = module((raw - torch.tensor(mean)[:, None, None])
                                           / torch.tensor(std)[:, None, None])
        got = program(raw)
        assert got[2].shape == (batch, 5, *size)
        assert (scores > 0).sum() >= batch  # real detections compared, not only empty slots
        torch.testing.assert_close(got[0], scores, atol=1e-5, rtol=0)
        assert torch.equal(got[1], labels)
        torch.testing.assert_close(got[2], masks, atol=1e-4, rtol=0)


def test_predict_onnx_refuses_a_program_with_what_to_do(tmp_path, capsys):
    from PIL import Image

    from segwise.cli.main import main
    from segwise.inference.onnx_predictor import OnnxPredictor

    _, path, _ = _write(tmp_path, pin=False)
    with pytest.raises(ValueError, match=r"PyTorch archive .*not ONNX.*load_instance_program"):
        OnnxPredictor(path)
    image = tmp_path / "img.png"
    Image.fromarray(torch.zeros(20, 20, 3, dtype=torch.uint8).numpy()).save(image)
    assert main(["predict", "--onnx", str(path), str(image), "--out", str(tmp_path / "p")]) != 0
    assert "load_instance_program" in capsys.readouterr().err


def test_size_flag_parses_hxw_and_refuses_other_text():
    import argparse

    from segwise.cli.export import _size

    assert _size("256x320") == (256, 320)
    assert _size("96X64") == (96, 64)
    assert _size("128") == (128, 128)  # one number: a square
    for bad in ("0x64", "64x", "axb", "64x64x3", "-64x64"):
        with pytest.raises(argparse.ArgumentTypeError, match="write HxW"):
            _size(bad)


@pytest.mark.slow
def test_solov2_program_keeps_height_and_width_symbolic():
    """SOLOv2 (tiny heads, thresholds 0) traced at 64x64 with free sizes runs, and equals
    PyTorch, at other sizes and batches: no op of the model or its decoding pins a size (the
    CoordConv ramps and the P2 halving used to). In memory: the file round trip is the YOLACT
    test's."""
    from segwise.inference.instance_export import instance_export_module
    from segwise.inference.instance_program import _export
    from segwise.instance.methods import get_method, options_from_mapping

    options = {"fpn_channels": 16, "head_channels": 16, "stacked_convs": 1, "mask_channels": 8,
               "kernel_dims": 8, "category_threshold": 0.0, "score_threshold": 0.0,
               "grid_reference": 64}
    spec = get_method("solov2")
    torch.manual_seed(0)
    model = spec.build(encoder="resnet18", in_channels=3, num_classes=1, weights=None,
                       options=options_from_mapping(spec.options_type, options, method="solov2"))
    module, _ = instance_export_module(model.eval(), method="solov2", options=options,
                                       max_instances=5)
    deploy = InstanceDeployModule(module, in_channels=3, method="solov2", max_instances=5).eval()
    program = _export(deploy, torch.rand(2, 3, 64, 64), free_size=True).module()
    g = torch.Generator().manual_seed(4)
    for batch, size in ((1, (50, 70)), (2, (97, 131))):
        image = torch.rand(batch, 3, *size, generator=g)
        with torch.no_grad():
            expected, got = deploy(image), program(image)
        assert (expected[0] > 0).sum() >= batch  # real detections compared
        torch.testing.assert_close(got[0], expected[0], atol=1e-5, rtol=0)
        assert torch.equal(got[1], expected[1])
        torch.testing.assert_close(got[2], expected[2], atol=1e-4, rtol=0)
