"""YOLACT export: decoding included, fixed-size outputs, onnxruntime == PyTorch at two sizes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from segwise.inference.deploy import verification_sizes
from segwise.instance.methods.yolact import YOLACT, YOLACTOptions

OPTIONS = YOLACTOptions(
    fpn_channels=16, num_prototypes=4, anchor_sizes=(8, 12, 16, 24, 32), top_k=20,
    score_threshold=0.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    model = YOLACT().build(
        encoder="resnet18", in_channels=3, num_classes=2, options=OPTIONS, weights=None
    ).eval()
    return YOLACT().export_module(model, options=OPTIONS, max_instances=10).eval()


def test_export_module_outputs_fixed_size(exported):
    with torch.no_grad():
        scores, labels, masks = exported(torch.rand(2, 3, 45, 51))
    assert scores.shape == labels.shape == (2, 10)
    assert masks.shape == (2, 10, 45, 51)
    assert labels.dtype == torch.int64 and ((labels >= 0) & (labels <= 2)).all()
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # descending
    assert ((masks >= 0) & (masks <= 1)).all()


def test_onnx_matches_pytorch_at_two_sizes(exported, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "yolact.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript-exporter deprecation, tracer warnings
        torch.onnx.export(
            exported,
            (torch.rand(1, 3, 64, 64),),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["scores", "labels", "masks"],
            opset_version=17,
            dynamic_axes={
                "image": {0: "batch", 2: "height", 3: "width"},
                "scores": {0: "batch"},
                "labels": {0: "batch"},
                "masks": {0: "batch", 2: "height", 3: "width"},
            },
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    for h, w in verification_sizes((64, 64)):  # (64, 64) and the odd (97, 131)
        image = torch.rand(2, 3, h, w, generator=g)
        with torch.no_grad():
            ref = [t.numpy() for t in exported(image)]
        got = session.run(None, {"image": image.numpy()})
        assert got[2].shape == (2, 10, h, w)
        assert (ref[0] > 0).sum() >= 2  # real detections compared, not only empty slots
        np.testing.assert_allclose(got[0], ref[0], atol=1e-5)
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_allclose(got[2], ref[2], atol=1e-4)
