"""Smoke test: the inference benchmark runs end to end on a tiny setting and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_inference.py"


@pytest.mark.slow
def test_bench_inference_smoke(tmp_path):
    out = tmp_path / "inference.json"
    subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--size",
            "64",
            "--tile",
            "32",
            "--rounds",
            "1",
            "--methods",
            "monai,segwise_argmax",
            "--latency-repeats",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(out.read_text())
    assert set(report["methods"]) == {"monai", "segwise_argmax"}
    assert report["methods"]["segwise_argmax"]["label_agreement_with_monai"] == 1.0
    assert report["onnxruntime_vs_eager"]["max_abs_diff"] < 1e-4
    assert "clear_refs" in report["memory_method"]
