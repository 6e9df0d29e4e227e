"""benchmarks/bench_volumes.py (issue 26): its evaluator agrees with MONAI's Dice and HD95 on
anisotropic volumes, and the MONAI arm runs end to end in a few steps (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_volumes.py"
SPACING = (2.0, 1.0, 0.5)  # mm per array axis: thick first axis, fine last


def _bench():
    spec = importlib.util.spec_from_file_location("bench_volumes", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """(12, 20, 28) label and prediction: an ellipsoid (1) and a box (2), moved and speckled."""
    x, y, z = np.meshgrid(np.arange(12), np.arange(20), np.arange(28), indexing="ij")
    label = np.zeros((12, 20, 28), np.uint8)
    label[((x - 5) / 3.5) ** 2 + ((y - 7) / 5) ** 2 + ((z - 9) / 6) ** 2 <= 1] = 1
    label[3:8, 12:18, 16:25] = 2
    pred = np.zeros_like(label)
    pred[((x - 6) / 3) ** 2 + ((y - 8) / 5) ** 2 + ((z - 10) / 7) ** 2 <= 1] = 1
    pred[4:9, 11:17, 18:26] = 2
    rng = np.random.default_rng(0)
    speckle = rng.random(label.shape) < 0.01
    pred[speckle] = rng.integers(0, 3, int(speckle.sum()))
    return pred, label


def _monai_scores(pred: np.ndarray, label: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """MONAI's Dice and HD95 for classes 1 and 2 of one volume, each of shape (2,)."""
    import torch
    from monai.metrics import DiceMetric, compute_hausdorff_distance
    from monai.networks.utils import one_hot

    p = one_hot(torch.from_numpy(pred.astype(np.int64))[None, None], num_classes=3)
    t = one_hot(torch.from_numpy(label.astype(np.int64))[None, None], num_classes=3)
    dice = DiceMetric(include_background=False, reduction="none")(p, t)[0].numpy()
    hd95 = compute_hausdorff_distance(p, t, include_background=False, percentile=95,
                                      spacing=[float(s) for s in spacing])[0].numpy()
    return dice, hd95


def test_evaluator_matches_monai_with_anisotropic_spacing(tmp_path):
    pytest.importorskip("monai")
    nib = pytest.importorskip("nibabel")
    bench = _bench()
    pred, label = _pair()
    ours = bench.score_volume(pred, label, SPACING)
    dice, hd95 = _monai_scores(pred, label, SPACING)
    np.testing.assert_allclose(list(ours["dice"].values()), dice, rtol=0, atol=1e-6)
    np.testing.assert_allclose(list(ours["hd95_mm"].values()), hd95, rtol=0, atol=1e-4)
    assert not np.allclose(hd95, _monai_scores(pred, label, (1.0, 1.0, 1.0))[1])  # spacing counts

    # through files: the spacing comes from the label's header; a moved affine is an error
    root, preds = tmp_path / "data", tmp_path / "pred"
    (root / "labels").mkdir(parents=True)
    preds.mkdir()
    affine = np.diag([*SPACING, 1.0])
    nib.save(nib.Nifti1Image(label.astype(np.float32), affine), str(root / "labels/a.nii.gz"))
    nib.save(nib.Nifti1Image(label.astype(np.float32), affine), str(root / "labels/b.nii.gz"))
    nib.save(nib.Nifti1Image(pred, affine), str(preds / "a.nii.gz"))
    moved = affine.copy()
    moved[0, 3] = 1.0
    nib.save(nib.Nifti1Image(pred, moved), str(preds / "b.nii.gz"))
    report = bench.evaluate(preds, root, ["a", "b", "c"])
    assert report["n_volumes"] == 1
    assert report["per_volume"]["a"]["spacing"] == list(SPACING)
    assert report["hd95_mm"]["anterior"] == pytest.approx(float(hd95[0]), abs=1e-4)
    assert report["mean_fg_dice"] == pytest.approx(float(dice.mean()), abs=1e-6)
    assert len(report["errors"]) == 2
    assert "b: prediction affine" in report["errors"][0]
    assert "c: no prediction" in report["errors"][1]


@pytest.mark.slow
@pytest.mark.shared_data
def test_monai_arm_quick_writes_scored_json(tmp_path, shared_data):
    pytest.importorskip("monai")
    nib = pytest.importorskip("nibabel")
    root = shared_data / "msd_hippocampus"
    if not (root / "splits.json").is_file():
        pytest.skip(f"MSD Hippocampus not found at {root}")
    bench = _bench()
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--steps", "3", "--val-limit", "2", "--arms", "monai",
                "--data", str(root), "--out", str(tmp_path / "work"), "--json", str(out)])
    report = json.loads(out.read_text())
    (run,) = report["runs"]["monai"]
    assert "error" not in run, run.get("error")
    assert run["steps"] == 3 and run["n_volumes_scored"] == 2 and run["evaluator_errors"] == []
    for name in ("anterior", "posterior"):
        assert 0.0 <= run["dice"][name] <= 1.0
    assert 0.0 <= run["mean_fg_dice"] <= 1.0 and math.isfinite(run["mean_fg_dice"])
    # the evaluator's figures on the real predictions are MONAI's too
    for vid, scores in run["per_volume"].items():
        pred_img = nib.load(str(tmp_path / "work/seed0/monai_pred" / f"{vid}.nii.gz"))
        label_img = nib.load(str(root / "labels" / f"{vid}.nii.gz"))
        assert np.allclose(pred_img.affine, label_img.affine)
        dice, hd95 = _monai_scores(np.asarray(pred_img.dataobj),
                                   np.rint(np.asarray(label_img.dataobj)),
                                   label_img.header.get_zooms()[:3])
        np.testing.assert_allclose(list(scores["dice"].values()), dice, atol=1e-6)
        for ours, theirs in zip(scores["hd95_mm"].values(), hd95, strict=True):
            assert (ours is None and not math.isfinite(theirs)) or ours == pytest.approx(
                float(theirs), abs=1e-4)
