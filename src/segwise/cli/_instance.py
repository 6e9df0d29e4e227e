"""``segwise evaluate`` for instance checkpoints: the report files and the terminal tables.

The scores come from the one evaluation loop (:func:`segwise.engine.evaluation.evaluation_loop`
with :class:`segwise.engine.instance_scoring.InstanceScorer`); ``segwise predict`` writes
instance outputs itself (``cli/predict.py``). This module imports neither verb.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def write_report(args: Any, loaded: Any, result: Any, out: Path) -> int:
    """Write scores.json, per_image.csv and report.html into ``out`` and print the tables.

    Args:
        args: the verb's arguments (``data``, ``split``, ``worst``, ``json``).
        loaded: the checkpoint's :class:`~segwise.runs.checkpoint.LoadedRun`.
        result: :class:`~segwise.engine.instance_scoring.InstanceEvalResult`.
        out: the report folder (created here).
    """
    from segwise.engine.hints import degenerate_prediction_hint

    per_image = result.per_image
    report = _report(result.metrics, per_image, list(loaded.info.labels.names), args, loaded)
    hint = degenerate_prediction_hint({
        "objects_per_image": [r["predicted"] for r in per_image],
        "true_objects_per_image": [r["ground_truth"] for r in per_image],
    })
    if hint:
        report["hint"] = f"the model {hint}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps(report, indent=2))
    with (out / "per_image.csv").open("w") as handle:
        handle.write("id,dsb_score,ground_truth,predicted\n")
        for row in per_image:
            handle.write(f"{row['id']},{row['dsb_score']},{row['ground_truth']},"
                         f"{row['predicted']}\n")
    _write_html(out, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, out)
    return 0


def _write_html(out: Path, report: dict) -> None:
    """report.html: summary, COCO AP, PQ per class, the DSB-score histogram, worst images."""
    from segwise.viz import plot_distribution
    from segwise.viz.report import write_html_report

    plot_distribution([r["dsb_score"] for r in report["per_image"]], out / "per_image_dsb.png",
                      xlabel="per-image DSB score")
    coco = [{"metric": f"COCO mask {k}", "value": v} for k, v in report["coco"].items()]
    write_html_report(
        out / "report.html",
        title=f"segwise evaluate: {report['checkpoint']} on {report['images']} images",
        summary=report["summary"],
        tables=[("Panoptic quality per class (match: same class, IoU > 0.5)",
                 report["pq_per_class"], ["class", "pq", "sq", "rq", "tp", "fp", "fn"]),
                ("COCO mask AP", coco, ["metric", "value"])],
        pictures=[("Per-image DSB score", out / "per_image_dsb.png")],
        worst=report["worst"],
        note=report.get("hint"),
    )


def _report(result: Any, per_image: list, names: list[str], args: Any, loaded: Any) -> dict:
    from segwise.engine.instance_scoring import COCO_MAX_DETECTIONS

    worst = sorted(per_image, key=lambda r: r["dsb_score"])[: max(0, args.worst)]
    per_class = [
        {"class": names[c] if c < len(names) else str(c), "label": c, **vals}
        for c, vals in sorted(result.pq_per_class.items())
    ]
    return _nan_to_none({
        "checkpoint": str(loaded.checkpoint),
        "method": loaded.model_args.get("method", loaded.model_args["kind"]),
        "data": str(args.data),
        "split": args.split,
        "images": result.num_images,
        "summary": {
            "dsb_score": result.dsb_score, "ap50": result.ap50, "pq": result.pq,
            "sq": result.sq, "rq": result.rq, "precision50": result.precision50,
            "recall50": result.recall50, "f1_50": result.f1_50,
            "mean_matched_iou50": result.mean_matched_iou50,
        },
        "ap_per_threshold": {f"{t:.2f}": v for t, v in result.ap_per_threshold},
        "pq_per_class": per_class,
        "coco": {**(result.coco or {}), "max_detections": COCO_MAX_DETECTIONS},
        "per_image": per_image,
        "worst": worst,
    })


def _fmt(value: Any) -> str:
    return "  n/a" if value is None else f"{value:.4f}"


def _print_report(report: dict, out: Path) -> None:
    from rich.table import Table

    from segwise.cli._common import console as make_console

    console = make_console()
    table = Table(title="panoptic quality per class (match: same class, IoU > 0.5)")
    for col in ("class", "pq", "sq", "rq", "tp", "fp", "fn"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in report["pq_per_class"]:
        table.add_row(row["class"], _fmt(row["pq"]), _fmt(row["sq"]), _fmt(row["rq"]),
                      str(row["tp"]), str(row["fp"]), str(row["fn"]))
    console.print(table)
    s, c = report["summary"], report["coco"]
    console.print(
        f"{report['images']} images | DSB score {_fmt(s['dsb_score'])} | AP50 {_fmt(s['ap50'])}"
        f" | PQ {_fmt(s['pq'])} (SQ {_fmt(s['sq'])}, RQ {_fmt(s['rq'])}) | F1@0.5 "
        f"{_fmt(s['f1_50'])}"
    )
    console.print(
        f"COCO mask AP {_fmt(c.get('ap'))} | AP50 {_fmt(c.get('ap50'))} | AP75 "
        f"{_fmt(c.get('ap75'))} (maxDets {c['max_detections']})"
    )
    worst = ", ".join(f"{w['id']} ({_fmt(w['dsb_score'])})" for w in report["worst"])
    console.print(f"worst images (DSB score): {worst}")
    if report.get("hint"):
        console.print(f"note: {report['hint']}")
    console.print(f"report written to {out}")
