"""The label space end to end: train -> evaluate -> predict -> export through the CLI.

- 300 classes in 16-bit masks and no ignore label: the pad label is 300 (not 255, a real class
  here), so validation, evaluation and the predicted 16-bit masks all work.
- void stored as 0 and given as the ignore label: refused before anything is written, with
  what to pass instead (an ignore label inside the class range has no consistent meaning).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segwise.cli.main import main

pytestmark = pytest.mark.slow

FAST = ["--model", "unet_textbook", "--model-option", "base_width=8", "--model-option", "depth=3",
        "--epochs", "1", "--device", "cpu", "--batch-size", "2", "--crop-size", "32",
        "--workers", "0", "--quiet"]


def _write(root: Path, num_classes: int, *, ignore_index: int | None = None) -> Path:
    """6 images 32x32 (4 train, 2 val), blocks of random classes; the top row is the last class."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    dtype = np.uint16 if num_classes > 256 else np.uint8
    for i in range(6):
        lab = np.zeros((32, 32), dtype)
        for _ in range(4):
            y, x = rng.integers(0, 24, 2)
            lab[y:y + 8, x:x + 8] = rng.integers(1, num_classes)
        lab[0, :] = num_classes - 1
        big = lab.astype(np.int64)
        img = np.stack([(big * 7) % 256, (big * 13) % 256, (big * 29) % 256], -1)
        Image.fromarray(img.astype(np.uint8)).save(root / "images" / f"im{i}.png")
        Image.fromarray(lab).save(root / "masks" / f"im{i}.png")
    (root / "splits.json").write_text(json.dumps({"train": ["im0", "im1", "im2", "im3"],
                                                  "val": ["im4", "im5"]}))
    table: dict = {"names": [f"c{i}" for i in range(num_classes)]}
    if ignore_index is not None:
        table["ignore_index"] = ignore_index
    (root / "classes.json").write_text(json.dumps(table))
    return root


def test_300_classes_in_16_bit_masks_without_ignore_label(tmp_path, capsys):
    data = _write(tmp_path / "data", 300)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), *FAST]) == 0
    info = json.loads((run / "data_info.json").read_text())
    assert info["labels"]["num_classes"] == 300 and info["labels"]["ignore_index"] is None

    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                 "--out", str(tmp_path / "eval"), "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["per_class"]) == 300
    matrix = np.loadtxt(tmp_path / "eval" / "confusion.csv", delimiter=",", skiprows=1,
                        usecols=range(1, 301))
    assert matrix.sum() == 2 * 32 * 32  # every validation pixel counted, class 255 included

    image = data / "images" / "im4.png"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(image),
                 "--out", str(tmp_path / "pred"), "--device", "cpu"]) == 0
    with Image.open(tmp_path / "pred" / "im4.png") as mask:
        labels = np.asarray(mask)
    assert labels.shape == (32, 32) and labels.dtype == np.uint16 and labels.max() < 300

    model = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--out", str(model)]) == 0
    import onnx

    props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    space = json.loads(props["segwise.labels"])
    assert space["pad_value"] == 300 and space["out_channels"] == 300
    assert space["ignore_index"] is None


def test_binary_task_evaluate_predict_export_use_the_label_space(tiny_binary, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_binary), "--out", str(run), *FAST]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_binary),
                 "--out", str(tmp_path / "eval"), "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["class"] for c in report["per_class"]] == ["background", "foreground"]
    matrix = np.loadtxt(tmp_path / "eval" / "confusion.csv", delimiter=",", skiprows=1,
                        usecols=(1, 2))
    assert matrix.shape == (2, 2)

    image = sorted((tiny_binary / "images").iterdir())[0]
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(image),
                 "--out", str(tmp_path / "pred"), "--device", "cpu"]) == 0
    with Image.open(tmp_path / "pred" / f"{image.stem}.png") as mask:
        assert mask.mode == "P"
        colours = json.loads((run / "data_info.json").read_text())["labels"]["colors"]
        assert mask.getpalette()[:6] == [v for c in colours for v in c]  # the label space's
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1}

    model = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--out", str(model)]) == 0
    import onnx

    props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    space = json.loads(props["segwise.labels"])
    assert space["task"] == "binary" and space["out_channels"] == 1 and space["pad_value"] == 2
    assert not {"segwise.label_space", "segwise.task"} & set(props)  # one label description
    # the probabilities head gives both classes, as the predictor does: [1 - p, p]
    from segwise.inference import OnnxPredictor

    session = OnnxPredictor(model)
    x = np.random.default_rng(0).random((1, 3, 40, 40), np.float32)
    probs = session(x)
    assert probs.shape == (1, 2, 40, 40)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_void_stored_as_0_is_refused_before_anything_is_written(tmp_path, capsys):
    data = _write(tmp_path / "data", 4, ignore_index=0)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), *FAST]) != 0
    err = capsys.readouterr().err
    assert "ignore_index=0 lies inside the 4 classes" in err
    assert "leave the ignore label unset" in err
    assert not run.exists()
    run2 = tmp_path / "run2"
    assert main(["train", "--data", str(data), "--out", str(run2), "--ignore-index", "2",
                 *FAST]) != 0
    assert "--ignore-index" in capsys.readouterr().err and not run2.exists()
