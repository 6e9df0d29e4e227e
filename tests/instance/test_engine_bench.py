"""benchmarks/bench_instance.py runs end to end on tiny synthetic data and writes its JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_instance.py"


def test_bench_instance_smoke(tmp_path):
    from segwise.data.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(
        tmp_path / "data", flavour="instance", num_images=8, size=(48, 48), seed=5
    )
    spec = importlib.util.spec_from_file_location("bench_instance", _BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "instance.json"
    code = bench.main([
        "--data", str(data), "--methods", "unet_watershed", "--steps", "2", "--batch-size", "2",
        "--crop", "48", "--train-images", "4", "--val-images", "1", "--encoder", "resnet18",
        "--out", str(out),
    ])
    assert code == 0
    payload = json.loads(out.read_text())
    assert (payload["train_images"], payload["val_images"]) == (4, 1)
    (row,) = payload["results"]
    assert row["method"] == "unet_watershed" and row["steps"] == 2
    for key in ("dsb_score", "ap50", "pq"):
        assert 0.0 <= row[key] <= 1.0
