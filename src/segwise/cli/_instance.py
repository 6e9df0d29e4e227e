"""``segwise evaluate`` for instance checkpoints: the report files and the terminal tables.

The scores come from the one evaluation loop (:func:`segwise.engine.evaluation.evaluation_loop`
with :class:`segwise.engine.instance_scoring.InstanceScorer`); ``segwise predict`` writes
instance outputs itself (``cli/predict.py``). This module imports neither verb.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_report"]

_WORST_PICTURE = "Worst images: image, true instances, predicted instances"
_WORST_CAPTION = ("Each instance in its own colour, outlined; colours tell the instances of one "
                  "panel apart and do not pair true with predicted instances. Rows in the order "
                  "of the worst-images table.")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def write_report(args: Any, loaded: Any, result: Any, out: Path, *, dataset: Any = None,
                 predict: Callable[[dict[str, Any]], Any] | None = None,
                 ids: Sequence[str] = ()) -> int:
    """Write scores.json, per_image.csv, the pictures and report.html into ``out``; print.

    Args:
        args: the verb's arguments (``data``, ``split``, ``worst``, ``json``).
        loaded: the checkpoint's :class:`~segwise.runs.checkpoint.LoadedRun`.
        result: :class:`~segwise.engine.instance_scoring.InstanceEvalResult`.
        out: the report folder (created here).
        dataset: the evaluated dataset; with ``predict`` and ``ids``, the worst images are
            predicted again (a handful) and drawn into ``worst.png``.
        predict: ``item -> InstancePrediction``, the evaluation's step.
        ids: the dataset's image ids, in its order.
    """
    from segwise.engine.hints import degenerate_prediction_hint

    per_image = result.per_image
    report = _report(result.metrics, per_image, list(loaded.info.labels.names), args, loaded)
    hint = degenerate_prediction_hint(result.census())
    if hint:
        report["hint"] = f"the model {hint}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps(report, indent=2))
    with (out / "per_image.csv").open("w") as handle:
        handle.write("id,dsb_score,ground_truth,predicted\n")
        for row in per_image:
            handle.write(f"{row['id']},{row['dsb_score']},{row['ground_truth']},"
                         f"{row['predicted']}\n")
    worst_png = None
    if dataset is not None and predict is not None and report["worst"]:
        worst_png = _draw_worst(out / "worst.png", report, loaded, dataset, predict, ids)
    _write_html(out, report, worst_png)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, out)
    return 0


class _WorstRows:
    """A scorer for the one evaluation loop that keeps ``(id, panels)`` to draw: the image, the
    true instances and the predicted ones, each instance in its own colour, outlined
    (:func:`segwise.instance.render_overlay`, the overlay of ``segwise predict --overlay``)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean, self.std = mean, std
        self.rows: list[tuple[str, list[Any]]] = []

    def update(self, item: dict[str, Any], prediction: Any) -> None:
        from segwise.instance import InstancePrediction, render_overlay
        from segwise.metrics.instance import split_crowd
        from segwise.viz import denormalize

        objects, _ = split_crowd(item["instances"])  # crowd regions are no object to find
        target = InstancePrediction.from_target(objects)
        rgb = denormalize(item["image"].numpy(), self.mean, self.std)
        self.rows.append((str(item["id"]), [rgb, render_overlay(rgb, target),
                                              render_overlay(rgb, prediction)]))

    def all_reduce(self) -> None:
        pass

    def compute(self) -> list[tuple[str, list[Any]]]:
        return self.rows


def _draw_worst(path: Path, report: dict, loaded: Any, dataset: Any,
                predict: Callable[[dict[str, Any]], Any], ids: Sequence[str]) -> Path | None:
    """Predict the worst images again (in the worst-images order) and draw them."""
    from segwise.engine.evaluation import evaluation_loop
    from segwise.viz import save_panel_grid

    position = {str(i): n for n, i in enumerate(ids)}
    indices = [position[str(w["id"])] for w in report["worst"] if str(w["id"]) in position]
    if not indices:
        return None
    info = loaded.info
    rows = evaluation_loop(dataset, predict, _WorstRows(tuple(info.mean), tuple(info.std)),
                           indices=indices)
    return save_panel_grid(path, rows,
                           columns=("image", "true instances", "predicted instances"),
                           title="worst images (lowest per-image DSB score)")


def _write_html(out: Path, report: dict, worst_png: Path | None) -> None:
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
        pictures=[("Per-image DSB score", out / "per_image_dsb.png"),
                  (_WORST_PICTURE, worst_png)],
        worst=report["worst"],
        worst_order=report["worst_order"],
        note=report.get("hint"),
        captions={_WORST_PICTURE: _WORST_CAPTION},
    )


def _report(result: Any, per_image: list, names: list[str], args: Any, loaded: Any) -> dict:
    from segwise.engine.instance_scoring import COCO_MAX_DETECTIONS, WORST_ORDER, worst_images

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
        "worst": worst_images(per_image, args.worst),
        "worst_order": WORST_ORDER,
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
    worst = ", ".join(f"{w['id']} ({_fmt(w['dsb_score'])}, {w['ground_truth']} objects)"
                      for w in report["worst"])
    console.print(f"worst images (DSB score, true objects; ties: more objects first): {worst}")
    if report.get("hint"):
        console.print(f"note: {report['hint']}")
    console.print(f"report written to {out} (open {out / 'report.html'} in a browser)")
