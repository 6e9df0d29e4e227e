"""The predictor protocol on semantic and instance models, every input form, hand-computed.

Models are fixed on purpose (no training): a 1x1 convolution whose logits are the normalised
channels, and a U-Net + watershed stand-in whose logits draw two known squares, so every
expected label, probability and instance is computed by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from segwise.data import DataInfo
from segwise.engine.evaluation import SemanticScorer, evaluation_loop
from segwise.engine.instance_scoring import InstanceScorer
from segwise.enums import Task
from segwise.inference import (
    TTA_FLIPS,
    InstancePredictor,
    PredictionKind,
    PredictOptions,
    Predictor,
    SemanticPrediction,
    SemanticPredictor,
    predictor_from_run,
)
from segwise.inference.predictor import is_instance_checkpoint, load_onnx_predictor
from segwise.labels import LabelSpace
from segwise.runs.checkpoint import LoadedRun

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
# pixels: red, green / blue, black -> normalised (2, -2, -2), (-2, 2, -2) / (-2, -2, 2), (-2,)*3
RGB = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [0, 0, 0]]], dtype=np.uint8)
LABELS = np.array([[0, 1], [2, 0]])  # black: a three-way tie, argmax takes the lowest class


def _info(task: Task, names: tuple[str, ...]) -> DataInfo:
    return DataInfo(labels=LabelSpace(task=task, names=names), in_channels=3,
                    mask_kind="index", mean=MEAN, std=STD)


def _run(model: nn.Module, info: DataInfo, model_args: dict) -> LoadedRun:
    return LoadedRun(model=model.eval(), info=info, config={"data": {"crop_size": 48}},
                     model_args=model_args, device=torch.device("cpu"),
                     checkpoint=Path("fixed.pt"))


class _Channels(nn.Module):
    """Logits = the first ``k`` normalised channels (a 1x1 identity); records input sizes."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        return x[:, : self.k]


def _semantic(task: Task = Task.MULTICLASS, options: PredictOptions | None = None):
    names = ("background", "foreground") if task is Task.BINARY else ("r", "g", "b")
    k = 1 if task is Task.BINARY else 3
    info = _info(task, names)
    model = _Channels(k)
    run = _run(model, info, {"kind": "semantic", "num_classes": k})
    return SemanticPredictor.from_run(run, options=options), model


def _forms(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "rgb.png"
    Image.fromarray(RGB).save(path)
    normalised = (torch.from_numpy(RGB).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    return {
        "path": str(path),
        "pathlib": path,
        "uint8 (H, W, C)": RGB,
        "float (H, W, C)": RGB.astype(np.float32) / 255,
        "tensor (C, H, W)": normalised,
        "tensor (N, C, H, W)": normalised[None],
    }


def test_semantic_labels_and_probabilities_for_every_input_form(tmp_path):
    predictor, _ = _semantic()
    assert isinstance(predictor, Predictor) and predictor.kind is PredictionKind.SEMANTIC
    e4 = math.exp(4.0)  # softmax of (2, -2, -2): e^2 / (e^2 + 2 e^-2) = e^4 / (e^4 + 2)
    for form, value in _forms(tmp_path).items():
        [pred] = predictor.predict(value)
        assert isinstance(pred, SemanticPrediction), form
        assert pred.labels.dtype == np.int64 and pred.labels.tolist() == LABELS.tolist(), form
        assert pred.probabilities.shape == (3, 2, 2), form
        assert pred.probabilities[:, 0, 0] == pytest.approx(
            [e4 / (e4 + 2), 1 / (e4 + 2), 1 / (e4 + 2)], rel=1e-5), form
        assert pred.probabilities[:, 1, 1] == pytest.approx([1 / 3] * 3, rel=1e-5), form
    # lists (mixed forms) and batches give one prediction per image, in order
    batch = torch.stack([_forms(tmp_path)["tensor (C, H, W)"]] * 2)
    preds = predictor.predict([str(tmp_path / "rgb.png"), RGB[::-1].copy(), batch])
    assert len(preds) == 4
    assert preds[1].labels.tolist() == LABELS[::-1].tolist()
    assert predictor.label_space.names == ("r", "g", "b")


def test_binary_probabilities_are_background_and_foreground(tmp_path):
    predictor, _ = _semantic(Task.BINARY)
    [pred] = predictor.predict(RGB)
    p = 1 / (1 + math.exp(-2.0))  # red: logit 2; every other pixel: logit -2
    assert pred.labels.tolist() == [[1, 0], [0, 0]]
    assert pred.probabilities.shape == (2, 2, 2)
    assert pred.probabilities[:, 0, 0] == pytest.approx([1 - p, p], rel=1e-5)
    assert pred.probabilities[:, 1, 1] == pytest.approx([p, 1 - p], rel=1e-5)


def test_tiles_and_flips_pass_through_the_options():
    image = np.random.default_rng(0).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    whole, model = _semantic()
    [plain] = whole.predict(image)
    assert model.sizes == [(10, 10)]  # default tile (2x the 48 crop, >= 512): one pass
    tiled, model = _semantic(options=PredictOptions(tile_size=4))
    [pred] = tiled.predict(image)
    assert max(max(s) for s in model.sizes) == 4 and len(model.sizes) > 1
    np.testing.assert_allclose(pred.probabilities, plain.probabilities, atol=1e-5)  # 1x1 model
    flipped, model = _semantic(options=PredictOptions(flips=TTA_FLIPS))
    [pred] = flipped.predict(image)
    assert len(model.sizes) == 4  # identity, horizontal, vertical, both
    np.testing.assert_allclose(pred.probabilities, plain.probabilities, atol=1e-6)


def test_flips_average_the_unflipped_probabilities():
    """An asymmetric model: flip averaging equals predicting each flip by hand, unflipped."""

    class Cumsum(nn.Module):
        def forward(self, x):
            return x.cumsum(-1).cumsum(-2) / 10

    info = _info(Task.MULTICLASS, ("r", "g", "b"))
    run = _run(Cumsum(), info, {"kind": "semantic", "num_classes": 3})
    image = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    tta = SemanticPredictor.from_run(run, options=PredictOptions(flips=TTA_FLIPS))
    plain = SemanticPredictor.from_run(run)
    expected = np.mean([
        np.flip(plain.predict(np.flip(image, axes).copy())[0].probabilities,
                tuple(a + 1 for a in axes))
        for axes in ((), (1,), (0,), (0, 1))
    ], axis=0)
    [pred] = tta.predict(image)
    np.testing.assert_allclose(pred.probabilities, expected, atol=1e-6)
    assert pred.labels.tolist() == expected.argmax(0).tolist()


class _TwoSquares(nn.Module):
    """U-Net + watershed stand-in: interior logits on two 3x3 squares, background elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        logits = torch.zeros(n, 3, h, w)
        logits[:, 0] = 10.0
        for r, c in ((1, 1), (5, 4)):
            logits[:, 0, r : r + 3, c : c + 3] = 0.0
            logits[:, 1, r : r + 3, c : c + 3] = 10.0
        return logits


def _instance(options: PredictOptions | None = None) -> InstancePredictor:
    from segwise.instance.methods import as_instance_model, get_method
    from segwise.instance.methods.unet_watershed import UNetWatershedOptions

    info = _info(Task.BINARY, ("background", "nucleus"))
    args = {"kind": "instance", "method": "unet_watershed", "name": "unet", "encoder": None,
            "in_channels": 3, "num_classes": 1, "options": {}}
    model = as_instance_model(_TwoSquares(), get_method("unet_watershed"), UNetWatershedOptions())
    return predictor_from_run(_run(model, info, args), options=options)


def test_instance_predictions_for_every_input_form(tmp_path):
    from segwise.instance import InstancePrediction

    predictor = _instance()
    assert isinstance(predictor, InstancePredictor) and isinstance(predictor, Predictor)
    assert predictor.kind is PredictionKind.INSTANCE
    image = np.zeros((9, 8, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "blank.png")
    forms = [str(tmp_path / "blank.png"), image, image.astype(np.float32),
             torch.full((3, 9, 8), -2.0), torch.full((2, 3, 9, 8), -2.0)]
    preds = predictor.predict(forms)
    assert len(preds) == 6
    for pred in preds:
        assert isinstance(pred, InstancePrediction) and pred.shape == (9, 8)
        assert len(pred) == 2 and sorted(pred.areas.tolist()) == [9, 9]
        assert pred.labels.tolist() == [1, 1]
        assert np.array_equal(pred.instance_map > 0, preds[0].instance_map > 0)


def test_one_evaluation_loop_scores_semantic_and_instance_predictions():
    # semantic: target [[0, 1], [1, 0]] against predicted LABELS [[0, 1], [2, 0]]
    predictor, _ = _semantic()
    target = torch.tensor([[0, 1], [1, 0]])
    image = (torch.from_numpy(RGB).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    item = {"image": image, "mask": target, "id": "a"}
    scorer = SemanticScorer(labels=LabelSpace(task=Task.MULTICLASS, names=("r", "g", "b")))
    result = evaluation_loop([item], lambda it: predictor.predict(it["image"])[0], scorer)
    # class 0: TP 2 -> Dice 1; class 1: TP 1, FN 1 -> 2/3; class 2: FP 1 -> 0
    assert list(result.scores.dice) == pytest.approx([1.0, 2 / 3, 0.0])
    assert result.matrix.tolist() == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]
    # instance: the two predicted squares against a target holding only the first one
    masks = torch.zeros(1, 9, 8, dtype=torch.uint8)
    masks[0, 1:4, 1:4] = 1
    inst = {"masks": masks, "labels": torch.tensor([1]), "boxes": torch.zeros(1, 4),
            "ids": torch.tensor([1])}
    item = {"image": torch.zeros(3, 9, 8), "instances": inst, "id": "b"}
    inst_predictor = _instance()
    out = evaluation_loop([item], lambda it: inst_predictor.predict(it["image"])[0],
                          InstanceScorer())
    # every IoU threshold: TP 1, FP 1, FN 0 -> AP_t = TP / (TP + FP + FN) = 1/2
    assert out.metrics.dsb_score == pytest.approx(0.5)
    assert out.per_image == [{"id": "b", "dsb_score": pytest.approx(0.5), "ground_truth": 1,
                              "predicted": 2}]


@pytest.mark.parametrize(("value", "error", "words"), [
    (np.full((4, 4, 3), 2.0, np.float32), ValueError, ["[0, 1]", "divide by 255"]),
    (np.zeros((3, 16, 16), np.uint8), ValueError, ["channels-first", "transpose(1, 2, 0)"]),
    (np.zeros((2, 8, 8, 3), np.uint8), ValueError, ["(2, 8, 8, 3)", "list of images"]),
    (np.zeros((8, 8, 5), np.uint8), ValueError, ["5 channels", "expects 3"]),
    (np.array([[[np.nan] * 3]], np.float32), ValueError, ["NaN"]),
    (torch.zeros(1, 2, 8, 8), ValueError, ["(1, 2, 8, 8)", "C = 3"]),
    (torch.zeros(3, 8, 8, dtype=torch.uint8), ValueError, ["torch.uint8", "numpy (H, W, C)"]),
    ("missing.png", FileNotFoundError, ["missing.png", "does not exist"]),
    (5, TypeError, ["int is not an image", "file path"]),
    ([], ValueError, ["no images given"]),
])
def test_bad_inputs_name_the_value_and_the_fix(value, error, words):
    predictor, _ = _semantic()
    with pytest.raises(error) as info:
        predictor.predict(value)
    for word in words:
        assert word in str(info.value)


def test_bad_options_name_the_value_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"tile_size=0 .* int >= 1"):
        PredictOptions(tile_size=0)
    with pytest.raises(ValueError, match=r"overlap=1.0 .* \[0, 1\)"):
        PredictOptions(overlap=1.0)
    with pytest.raises(ValueError, match="'diagonal' is not a flip"):
        PredictOptions(flips=("diagonal",))
    assert PredictOptions(flips="horizontal").flips == (TTA_FLIPS[0],)
    with pytest.raises(ValueError, match="not defined for instance models"):
        _instance(PredictOptions(flips=TTA_FLIPS))
    with pytest.raises(ValueError, match="overlap=0.5 cannot be set for instance models"):
        _instance(PredictOptions(overlap=0.5))
    multilabel = _run(_Channels(3), _info(Task.MULTILABEL, ("a", "b", "c")), {"kind": "semantic"})
    with pytest.raises(ValueError, match="multilabel model has no single label per pixel"):
        SemanticPredictor.from_run(multilabel)
    with pytest.raises(ValueError, match="without flips; drop tile_size/flips"):
        load_onnx_predictor(tmp_path / "m.onnx", options=PredictOptions(tile_size=64))


def test_is_instance_checkpoint_reads_only_the_model_kind(tmp_path):
    torch.save({"model_args": {"kind": "instance", "method": "unet_watershed"}},
               tmp_path / "i.pt")
    torch.save({"model_args": {"kind": "semantic"}}, tmp_path / "s.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert is_instance_checkpoint(tmp_path / "i.pt")
    assert not is_instance_checkpoint(tmp_path / "s.pt")
    assert not is_instance_checkpoint(tmp_path / "junk.pt")
    assert not is_instance_checkpoint(tmp_path / "absent.pt")
