"""The metrics benchmark runs end to end on a tiny shape and writes JSON (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_metrics.py"


@pytest.mark.slow
def test_bench_metrics_writes_json_with_matching_values(tmp_path):
    pytest.importorskip("monai")
    spec = importlib.util.spec_from_file_location("bench_metrics", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "metrics.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bench.main(["--shape", "2,3,48,48", "--spacing", "0.8,1.2", "--reps", "1", "--warmup",
                    "0", "--out", str(out)])  # fmt: skip
    report = json.loads(out.read_text())
    assert report["shape_NCHW"] == [2, 3, 48, 48]
    assert report["summary"]["max_abs_diff_hd95"] < 1e-4  # MONAI works in float32
    assert report["summary"]["max_abs_diff_nsd"] < 1e-6
