"""The loss benchmark runs end to end on a tiny shape and writes its JSON (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_losses.py"


@pytest.mark.slow
def test_bench_losses_writes_json(tmp_path):
    pytest.importorskip("monai")
    pytest.importorskip("segmentation_models_pytorch")
    spec = importlib.util.spec_from_file_location("bench_losses", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "losses.json"
    bench.main(["--shape", "2,3,8,8", "--reps", "1", "--warmup", "0", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["shape_NCHW"] == [2, 3, 8, 8]
    assert "memory_method" in report and "timing_method" in report
    values = {k: v["loss_value"] for k, v in report["results"].items()}
    # same tensors, same definition: the Dice values agree across libraries
    assert values["segwise.DiceLoss"] == pytest.approx(values["monai.DiceLoss"], rel=1e-4)
    assert values["segwise.DiceLoss"] == pytest.approx(values["smp.DiceLoss"], rel=1e-4)
    assert values["segwise.DiceCELoss"] == pytest.approx(values["monai.DiceCELoss"], rel=1e-4)
    for r in report["results"].values():
        assert r["peak_extra_bytes"] >= 0


@pytest.mark.slow
def test_bench_losses_imbalance_suite_values_agree(tmp_path):
    pytest.importorskip("monai")
    pytest.importorskip("segmentation_models_pytorch")
    spec = importlib.util.spec_from_file_location("bench_losses", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "imbalance.json"
    bench.main(["--suite", "imbalance", "--shape", "2,3,8,8", "--reps", "1", "--warmup", "0",
                "--out", str(out)])  # fmt: skip
    report = json.loads(out.read_text())
    values = {k: v["loss_value"] for k, v in report["results"].items()}
    assert values["segwise.TverskyLoss"] == pytest.approx(values["monai.TverskyLoss"], rel=1e-4)
    assert values["segwise.TverskyLoss"] == pytest.approx(values["smp.TverskyLoss"], rel=1e-4)
    assert values["segwise.LovaszLoss"] == pytest.approx(values["smp.LovaszLoss"], rel=1e-4)
    # MONAI's focal mean also divides by the C channels (docs/dice.md §7)
    assert values["segwise.FocalLoss"] == pytest.approx(3 * values["monai.FocalLoss"], rel=1e-4)
    assert set(report["summary"]) == {"focal", "tversky", "lovasz"}
