"""SOLOv2 export: decoding included, one dynamic ONNX graph checked in onnxruntime at two sizes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from segwise.inference.deploy import verification_sizes
from segwise.instance.methods.solov2 import SOLOv2, SOLOv2Options

TINY = {"fpn_channels": 16, "head_channels": 16, "stacked_convs": 1, "mask_channels": 8,
        "kernel_dims": 8}


def _model():
    method = SOLOv2()
    # thresholds at 0 so that an untrained model still fills every output row; grids
    # proportional to the input (reference 64 px), so the graph must follow the input size
    opts = method.resolve_options(SOLOv2Options(**TINY, category_threshold=0.0,
                                                score_threshold=0.0, grid_reference=64), None)
    torch.manual_seed(0)
    model = method.build(encoder="resnet18", in_channels=3, num_classes=2, options=opts,
                         weights=None).eval()
    return method, opts, model


def test_export_module_keeps_eval_mode():
    method, opts, model = _model()
    module = method.export_module(model, options=opts, max_instances=5)
    assert not module.training
    module.train(module.training)  # what an exporter does afterwards: the model stays in eval
    assert not model.training


@pytest.mark.slow
def test_onnx_matches_pytorch_at_two_sizes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    method, opts, model = _model()
    module = method.export_module(model, options=opts, max_instances=10)
    path = tmp_path / "solov2.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.rand(1, 3, 64, 64),), str(path), dynamo=False,
            input_names=["image"], output_names=["scores", "labels", "masks"], opset_version=17,
            dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "scores": {0: "n"},
                          "labels": {0: "n"}, "masks": {0: "n", 2: "h", 3: "w"}},
        )
    session = ort.InferenceSession(str(path))
    torch.manual_seed(1)
    for size in verification_sizes((64, 64)):  # (64, 64) and the odd (97, 131)
        images = torch.rand(2, 3, *size)
        with torch.no_grad():
            scores, labels, masks = module(images)
        got_scores, got_labels, got_masks = session.run(None, {"image": images.numpy()})
        assert got_masks.shape == (2, 10, *size)
        assert (scores > 0).all()  # every row used: the comparison covers real instances
        np.testing.assert_allclose(got_scores, scores.numpy(), atol=1e-5)
        np.testing.assert_array_equal(got_labels, labels.numpy())
        np.testing.assert_allclose(got_masks, masks.numpy(), atol=1e-4)
