"""Issue 31, item 3: `segwise predict --onnx` runs the instance exports segwise writes and
writes what `segwise predict --checkpoint` writes; segwise's own messages that name
onnxruntime reach the user whole."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from segwise.cli.main import error_message, main
from segwise.inference.onnx_instance import decode_slots


def test_decode_slots_keeps_scored_slots_thresholds_and_gives_overlaps_to_the_higher_score():
    masks = np.zeros((4, 4, 6), np.float32)
    masks[0, :2, :4] = 0.9  # slot 0: score 0.8
    masks[1, 1:3, 2:6] = 0.7  # slot 1: score 0.6, overlaps slot 0 on row 1, columns 2-3
    masks[1, 3, 5] = 0.5  # not above the threshold
    masks[2, 3, :] = 0.9  # slot 2: score 0 (an empty slot with a mask): dropped
    pred = decode_slots(np.array([0.8, 0.6, 0.0, 0.0]), np.array([2, 1, 1, 0]), masks,
                        mask_threshold=0.5)
    expected = np.array([[1, 1, 1, 1, 0, 0],
                         [1, 1, 1, 1, 2, 2],
                         [0, 0, 2, 2, 2, 2],
                         [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(pred.instance_map, expected)
    assert pred.labels.tolist() == [2, 1]
    np.testing.assert_allclose(pred.scores, [0.8, 0.6])
    empty = decode_slots(np.zeros(3), np.zeros(3, np.int64), np.zeros((3, 5, 7)),
                         mask_threshold=0.5)
    assert len(empty) == 0 and empty.shape == (5, 7)


def test_our_messages_that_name_onnxruntime_are_printed_whole():
    ours = ValueError("m.onnx is an instance export (yolact: outputs scores, labels, masks), "
                      "which OnnxPredictor does not run; run it with onnxruntime ... " + "x" * 300)
    assert error_message(ours) == (str(ours), 2)  # not cut, not "export it again"

    class Fail(Exception):  # how onnxruntime's own errors look
        pass

    Fail.__module__ = "onnxruntime.capi.onnxruntime_pybind11_state"
    message, code = error_message(Fail("[ONNXRuntimeError] : 1 : FAIL : bad node"))
    assert code == 1 and message.startswith("onnxruntime could not run the exported graph")


def _yolact_checkpoint(root):
    """A checkpoint as `segwise train --task instance` writes it, with random weights."""
    from segwise.data import DataInfo
    from segwise.enums import Task
    from segwise.labels import LabelSpace
    from segwise.runs.builders import build_model_from_args
    from segwise.runs.checkpoint import save_checkpoint

    options = {"fpn_channels": 16, "num_prototypes": 4, "anchor_sizes": [8, 12, 16, 24, 32],
               "top_k": 20, "score_threshold": 0.0}
    args = {"kind": "instance", "method": "yolact", "name": "yolact", "encoder": "resnet18",
            "in_channels": 3, "num_classes": 1, "options": options, "derived": ""}
    info = DataInfo(labels=LabelSpace(task=Task.BINARY, names=("background", "nucleus")),
                    in_channels=3, mask_kind="instance", mean=(0.5, 0.4, 0.3),
                    std=(0.2, 0.25, 0.3))
    torch.manual_seed(0)
    model = build_model_from_args(args)
    return save_checkpoint(root / "yolact" / "best.pt", {
        "config": {"data": {"crop_size": 64}}, "data_info": info.to_dict(),
        "model_args": args, "model": model.state_dict(),
    })


@pytest.fixture(scope="module")
def yolact_export(tmp_path_factory):
    """A tiny YOLACT checkpoint (random weights; thresholds at 0, so it finds objects), its
    ONNX export with the default slots, and three images of two sizes."""
    root = tmp_path_factory.mktemp("onnx_instance")
    ckpt = _yolact_checkpoint(root)
    onnx_path = root / "yolact.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(onnx_path)]) == 0
    rng = np.random.default_rng(0)
    images = []
    for i, (h, w) in enumerate([(64, 64), (50, 70), (64, 64)]):
        path = root / "images" / f"img{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        images.append(path)
    return ckpt, onnx_path, images


@pytest.mark.slow
def test_predict_onnx_of_an_instance_export_writes_what_the_checkpoint_writes(
        yolact_export, tmp_path, capsys):
    from segwise.instance import read_instance_png

    ckpt, onnx_path, images = yolact_export
    runs = {}
    for source, flag in ((ckpt, "--checkpoint"), (onnx_path, "--onnx")):
        out = tmp_path / flag.strip("-")
        assert main(["predict", flag, str(source), *map(str, images), "--out", str(out),
                     "--overlay", "--coco", "--device", "cpu"]) == 0
        runs[flag] = out
    capsys.readouterr()
    a, b = runs["--checkpoint"], runs["--onnx"]
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    found = 0
    for image in images:
        want = json.loads((a / f"{image.stem}_instances.json").read_text())["instances"]
        got = json.loads((b / f"{image.stem}_instances.json").read_text())["instances"]
        assert len(got) == len(want)
        assert [r["label"] for r in got] == [r["label"] for r in want]
        np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in want],
                                   atol=1e-4)
        ids_a = read_instance_png(a / f"{image.stem}_instances.png")
        ids_b = read_instance_png(b / f"{image.stem}_instances.png")
        assert (ids_a == ids_b).mean() >= 0.999  # float differences at the mask threshold
        found += len(want)
        overlay = np.asarray(Image.open(b / f"{image.stem}_overlay.png"))
        assert overlay.shape == (*ids_b.shape, 3)
    assert found > 0  # real instances compared, not only empty images
    coco_a = json.loads((a / "coco_results.json").read_text())
    coco_b = json.loads((b / "coco_results.json").read_text())
    assert len(coco_a) == len(coco_b) == found
    summary = json.loads((b / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["inputs"] == len(images)


@pytest.mark.slow
def test_instance_export_through_the_library_and_the_refusals(yolact_export, tmp_path, capsys):
    from segwise.inference import OnnxInstancePredictor, OnnxPredictor, load_predictor
    from segwise.inference.predictor import load_onnx_predictor

    ckpt, onnx_path, images = yolact_export
    predictor = load_onnx_predictor(onnx_path)
    assert isinstance(predictor, OnnxInstancePredictor) and predictor.kind == "instance"
    assert predictor.label_space.names == ("background", "nucleus")
    assert predictor.method == "yolact" and predictor.mask_threshold == 0.5
    [onnx_pred] = predictor.predict(images[1])
    [torch_pred] = load_predictor(ckpt, device="cpu").predict(images[1])
    assert onnx_pred.shape == torch_pred.shape == (50, 70)
    assert len(onnx_pred) == len(torch_pred) > 0
    # OnnxPredictor (semantic masks) still refuses it, saying what runs it
    with pytest.raises(ValueError, match=r"instance export \(yolact.*`segwise predict --onnx`"):
        OnnxPredictor(onnx_path)
    # flags that do not apply are refused whole, naming the flag
    for flag in (["--tile-size", "32"], ["--tta"], ["--probabilities"]):
        assert main(["predict", "--onnx", str(onnx_path), str(images[0]), "--out",
                     str(tmp_path / "refused"), *flag]) == 2
        err = capsys.readouterr().err
        assert flag[0] in err and err.count("\n") == 1
    assert not (tmp_path / "refused").exists()
    with torch.no_grad():  # the session takes a batch of raw pixels
        scores, labels, masks = predictor(np.zeros((2, 3, 40, 40), np.float32))
    assert scores.shape == labels.shape == (2, predictor.max_instances)
    assert masks.shape == (2, predictor.max_instances, 40, 40)
