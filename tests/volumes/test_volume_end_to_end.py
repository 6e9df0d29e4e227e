"""Train -> evaluate -> predict on volumes: tiny data (fast) and MSD Hippocampus (slow)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from tests.volumes.test_volume_training import TINY

from segwise.cli.main import main

nib = pytest.importorskip("nibabel")


def _train(data: Path, out: Path, extra: list[str] = ()) -> Path:
    assert main(["train", "--data", str(data), "--out", str(out), *TINY, *extra]) == 0
    return out


def test_evaluate_scores_each_volume_in_mm_and_predict_writes_on_the_inputs_grid(
        volume_data, tmp_path):
    run = _train(volume_data, tmp_path / "run")
    report = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(volume_data), "--out",
                 str(report), "--json"]) == 0
    scores = json.loads((report / "scores.json").read_text())
    assert set(scores["summary"]) >= {"mean_dice", "mean_hd95", "mean_nsd"}
    rows = list(csv.DictReader((report / "per_image.csv").open()))
    assert [r["id"] for r in rows] == ["case_004", "case_005"]  # the run's val split
    assert {"dice_bright", "hd95_bright", "nsd_dark"} <= set(rows[0])
    assert (report / "report.html").is_file() and (report / "worst.png").is_file()
    # --spacing belongs to 2D images: volumes carry theirs
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(volume_data), "--out",
                 str(tmp_path / "e2"), "--spacing", "1,1"]) != 0

    pred = tmp_path / "pred"
    images = volume_data / "imagesTr"
    assert main(["predict", "--checkpoint", str(run), str(images), "--out", str(pred),
                 "--quiet"]) == 0
    for source in sorted(images.iterdir()):
        written = nib.load(pred / source.name)
        original = nib.load(source)
        assert np.array_equal(written.affine, original.affine)
        assert written.shape == original.shape


@pytest.mark.slow
@pytest.mark.shared_data
def test_msd_hippocampus_train_evaluate_predict(shared_data, tmp_path):
    hippocampus = shared_data / "msd_hippocampus"
    if not hippocampus.is_dir():
        pytest.skip(f"{hippocampus} not found")
    run = tmp_path / "run"
    assert main(["train", "--data", str(hippocampus), "--out", str(run), "--max-steps", "6",
                 "--epochs", "1", "--patch-size", "24,32,24", "--batch-size", "2",
                 "--threads", "1", "--quiet"]) == 0
    args = json.loads((run / "model_args.json").read_text())
    assert args["name"] == "resunet3d"  # the default model for volumes
    report = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(hippocampus), "--out",
                 str(report), "--json"]) == 0
    scores = json.loads((report / "scores.json").read_text())
    assert scores["per_image"]["count"] == 30
    splits = json.loads((hippocampus / "splits.json").read_text())
    inputs = [str(hippocampus / "images" / f"{i}.nii.gz") for i in splits["val"][:2]]
    pred = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run), *inputs, "--out", str(pred),
                 "--quiet"]) == 0
    for source in inputs:
        written = nib.load(pred / Path(source).name)
        original = nib.load(source)
        assert np.array_equal(written.affine, original.affine)
        assert written.header.get_best_affine().tolist() == original.affine.tolist()
        assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}
