"""Boundary metrics in the evaluation path and the CLI (train with a sum loss -> evaluate)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from segwise.engine.evaluation import BoundarySettings, evaluate_model
from segwise.enums import Task
from segwise.labels import LabelSpace
from segwise.metrics import BoundaryMetrics

TWO_CLASSES = LabelSpace(task=Task.MULTICLASS, names=("background", "square"))


class _FixedPrediction(nn.Module):
    """Returns one-hot logits of a fixed label map, whatever the image."""

    def __init__(self, labels: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.logits = nn.functional.one_hot(labels, num_classes).permute(2, 0, 1).float() * 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.unsqueeze(0).expand(x.shape[0], -1, -1, -1)


def test_evaluate_model_reports_the_boundary_metrics_of_its_predictions():
    target = torch.zeros(6, 6, dtype=torch.long)
    target[1:4, 1:4] = 1
    pred = torch.zeros(6, 6, dtype=torch.long)
    pred[2:5, 1:4] = 1  # one row down
    dataset = [{"image": torch.zeros(3, 6, 6), "mask": target, "id": "a"}]
    result = evaluate_model(
        _FixedPrediction(pred, 2), dataset, labels=TWO_CLASSES,
        device=torch.device("cpu"),
        boundary=BoundarySettings(spacing=(2.0, 0.5), tolerance=1.0),
    )  # fmt: skip
    ref = BoundaryMetrics(2, spacing=(2.0, 0.5), tolerance=1.0)
    ref.update(pred[None], target[None])
    expected = ref.compute()
    # class 1 by hand (test_boundary.py): HD 2, ASSD 13/16, NSD 10/16
    assert float(result.boundary.hd[0, 1]) == 2.0
    assert float(result.boundary.nsd[0, 1]) == 10 / 16
    summary = result.summary()
    assert summary["mean_hd95"] == pytest.approx(expected.mean["hd_percentile"])
    assert summary["mean_nsd"] == pytest.approx(expected.mean["nsd"])
    report = result.report()
    assert report["per_class"][1]["assd"] == pytest.approx(13 / 16)
    # per-image IoU: class 0 TP 36 - 12 = 24, FP 3, FN 3 -> 24/30; class 1 TP 6, FP 3, FN 3 -> 6/12
    assert report["per_image"]["images"][0]["iou"] == pytest.approx((24 / 30 + 6 / 12) / 2)
    assert summary["per_image_iou"] == pytest.approx((24 / 30 + 6 / 12) / 2)
    assert report["boundary"]["mean"]["hd95"] == pytest.approx(summary["mean_hd95"])
    assert "mean_hd95" not in evaluate_model(
        _FixedPrediction(pred, 2), dataset, labels=TWO_CLASSES,
        device=torch.device("cpu")).summary()  # fmt: skip


@pytest.mark.slow
def test_cli_train_sum_loss_then_evaluate_with_boundary_metrics(tiny_multiclass, tmp_path,
                                                                fast_flags, capsys):
    from segwise.cli.main import main

    run = tmp_path / "run"
    assert main([
        "train", "--data", str(tiny_multiclass), "--out", str(run), *fast_flags,
        "--epochs", "1", "--device", "cpu", "--batch-size", "4", "--crop-size", "48",
        "--workers", "0", "--quiet", "--loss", "dice+focal", "--loss-weights", "1,0.5",
    ]) == 0  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "eval"
    assert main([
        "evaluate", "--checkpoint", str(run), "--data", str(tiny_multiclass), "--out", str(out),
        "--json", "--device", "cpu", "--metrics", "dice,iou,hd95,nsd", "--spacing", "0.5,0.5",
        "--nsd-tolerance", "1.0",
    ]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert {"mean_hd95", "mean_nsd"} <= set(report["summary"])
    assert report["boundary"]["spacing"] == [0.5, 0.5] and report["boundary"]["tolerance"] == 1.0
    nsd = report["summary"]["mean_nsd"]
    assert nsd is None or 0.0 <= nsd <= 1.0
    assert "hd95" in (out / "per_class.csv").read_text().splitlines()[0]


def test_metrics_flag_names_the_unknown_metric():
    import argparse

    from segwise.cli.evaluate import _metric_list, _spacing

    assert _metric_list("dice, HD95,nsd") == ("dice", "hd95", "nsd")
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown metric\(s\) \['hd99'\]"):
        _metric_list("dice,hd99")
    with pytest.raises(argparse.ArgumentTypeError, match="expected positive numbers"):
        _spacing("0.5,-1")
