"""The label space through export: the binary probabilities head gives two channels like the
predictor, the ONNX metadata holds one label description, and files of the older metadata form
(``segwise.task``, a flat ``segwise.data_info`` and ``segwise.label_space``) still load."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from segwise.data import DataInfo
from segwise.inference import OnnxPredictor, export_onnx, read_onnx_metadata
from segwise.inference.metadata import data_info_metadata, parse_metadata
from segwise.inference.predictor import load_onnx_predictor
from segwise.labels import LabelSpace

BINARY = LabelSpace(task="binary", names=("background", "nucleus"), colors=((0, 0, 0),
                                                                            (255, 0, 0)))
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class _FirstChannel(nn.Module):
    """Logit = the first input channel (so the expected values are computed by hand)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


class _FirstChannelProbability(nn.Module):
    """sigmoid of the first channel: what an older binary probabilities export computed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1].sigmoid()


def _rewrite_metadata(path, props: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _metadata(path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_binary_probabilities_head_gives_background_and_foreground(tmp_path):
    path = export_onnx(_FirstChannel(), tmp_path / "m.onnx", in_channels=3, labels=BINARY,
                       head="probabilities")
    # logits 0, ln 3, -ln 3 -> p = 1/2, 3/4, 1/4 -> channels [1 - p, p]
    x = np.array([0.0, math.log(3), -math.log(3)], np.float32).reshape(1, 1, 1, 3)
    x = np.repeat(x, 3, axis=1)
    predictor = OnnxPredictor(path)
    out = predictor(x)
    assert out.shape == (1, 2, 1, 3)
    np.testing.assert_allclose(out[0, :, 0], [[0.5, 0.25, 0.75], [0.5, 0.75, 0.25]], atol=1e-6)
    np.testing.assert_allclose(predictor.predict_probabilities(x), out)
    assert predictor.predict_labels(x).tolist() == [[[0, 1, 0]]]  # a logit of 0: background


def test_the_metadata_holds_one_label_description(tmp_path):
    path = export_onnx(_FirstChannel(), tmp_path / "m.onnx", in_channels=3, labels=BINARY)
    props = _metadata(path)
    assert json.loads(props["segwise.labels"]) == BINARY.to_dict()
    assert not {"segwise.task", "segwise.label_space", "segwise.data_info"} & set(props)
    meta = read_onnx_metadata(path)
    assert meta["labels"] == BINARY and meta["task"] == "binary"
    # without labels=, the label space follows the model's output: one channel is binary
    path = export_onnx(_FirstChannel(), tmp_path / "d.onnx", in_channels=3)
    assert read_onnx_metadata(path)["labels"] == LabelSpace.for_channels(1)
    path = export_onnx(nn.Conv2d(3, 4, 1), tmp_path / "c.onnx", in_channels=3)
    assert read_onnx_metadata(path)["labels"].names == ("0", "1", "2", "3")


def test_segwise_export_writes_the_data_info_without_its_labels():
    info = DataInfo(labels=BINARY, in_channels=3, mask_kind="binary", mean=MEAN, std=STD)
    stored = json.loads(data_info_metadata(info.to_dict()))
    assert "labels" not in stored and stored["mean"] == list(MEAN)
    assert DataInfo.from_dict({**stored, "labels": BINARY.to_dict()}) == info


#: the metadata that ``segwise export`` wrote for a binary model before segwise.labels
OLD_PROPS = {
    "segwise.in_channels": "3",
    "segwise.mean": json.dumps(list(MEAN)),
    "segwise.std": json.dumps(list(STD)),
    "segwise.head": "probabilities",
    "segwise.task": "binary",
    "segwise.data_info": json.dumps({
        "task": "binary", "num_classes": 2, "class_names": ["background", "nucleus"],
        "class_colors": [[0, 0, 0], [255, 0, 0]], "in_channels": 3, "ignore_index": None,
        "mask_kind": "binary", "mean": list(MEAN), "std": list(STD),
        "class_pixel_counts": [90, 10], "median_size": [2, 3], "ignore_color": None,
        "classes_source": "binary masks"}),
    "segwise.label_space": json.dumps({
        "task": "binary", "names": ["background", "nucleus"], "colors": [[0, 0, 0], [255, 0, 0]],
        "ignore_index": None, "ignore_color": None, "pad_value": 2, "out_channels": 1}),
}


def test_old_metadata_with_both_data_info_and_label_space_is_read():
    meta = parse_metadata(OLD_PROPS)
    assert meta["labels"] == BINARY and meta["task"] == "binary" and meta["mean"] == list(MEAN)
    only_data_info = {k: v for k, v in OLD_PROPS.items() if k != "segwise.label_space"}
    assert parse_metadata(only_data_info)["labels"] == BINARY
    task_only = {k: v for k, v in OLD_PROPS.items()
                 if k not in ("segwise.label_space", "segwise.data_info")}
    meta = parse_metadata(task_only)  # a library export: the task alone
    assert meta["labels"] is None and meta["task"] == "binary"


def test_an_old_one_channel_binary_export_still_predicts_two_classes(tmp_path):
    path = export_onnx(_FirstChannelProbability(), tmp_path / "old.onnx", in_channels=3,
                       labels=BINARY, head="logits", mean=MEAN, std=STD)
    _rewrite_metadata(path, OLD_PROPS)  # as an older segwise wrote it: p alone, one channel
    raw = np.full((1, 3, 1, 3), 0.5, np.float32)
    raw[0, 0, 0] = [0.5, 0.5 + 0.25 * math.log(3), 0.5 - 0.25 * math.log(3)]  # logits 0, ±ln 3
    session = OnnxPredictor(path)
    assert session(raw).shape == (1, 1, 1, 3) and session.labels == BINARY
    np.testing.assert_allclose(session.predict_probabilities(raw)[0, :, 0],
                               [[0.5, 0.25, 0.75], [0.5, 0.75, 0.25]], atol=1e-6)
    assert session.predict_labels(raw).tolist() == [[[0, 1, 0]]]
    predictor = load_onnx_predictor(path)  # the flat data_info gives the normalisation
    assert predictor.label_space == BINARY and predictor.info.mean == MEAN
    [pred] = predictor.predict(raw[0].transpose(1, 2, 0))  # a float (H, W, C) image in [0, 1]
    assert pred.probabilities.shape == (2, 1, 3) and pred.labels.tolist() == [[0, 1, 0]]
