"""``segwise evaluate``: score a checkpoint on a labelled dataset."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

NAME = "evaluate"
HELP = "score a checkpoint on a labelled dataset (Dice, IoU, confusion matrix)"
DESCRIPTION = """\
Evaluate RUN/best.pt on a dataset: per-class Dice, IoU, precision and recall, mean and
frequency-weighted IoU, pixel accuracy, the per-image Dice distribution and the worst images.
Writes scores.json, per_class.csv, per_image.csv, confusion.csv, confusion.png and
report.html (one self-contained page: the tables, the confusion matrix, the per-image Dice
histogram and the worst images with overlays, to open in a browser or send) into --out
(default: RUN/eval-DATASET-SPLIT). Definitions: docs/metrics.md.

Boundary metrics on request: --metrics dice,iou,hd95,nsd adds the Hausdorff distance (hd),
its 95th percentile (hd95), the average symmetric surface distance (assd) and the normalised
surface Dice (nsd) per class, in the units of --spacing (pixel size, rows,cols; default 1),
NSD at --nsd-tolerance (same units). Dice and IoU are always reported.

Volumes (a run trained on NIfTI/NRRD/DICOM volumes): HD95 and NSD are on by default, in mm
with each file's own voxel size; per_image.csv holds one row per volume with its per-class
Dice, HD95 and NSD (docs/volumes.md).

Instance checkpoints (segwise train --task instance) report instead the DSB2018 score, AP at
IoU 0.5..0.95, PQ/SQ/RQ per class and COCO mask AP/AP50/AP75 (docs/instance.md), and write
scores.json, per_image.csv (DSB score and instance counts per image), per_image_dsb.png,
worst.png (the worst images: image, true and predicted instances, each instance in its own
colour, outlined) and report.html. The worst images are those of lowest DSB score, ties
broken by the number of true objects (more first), then by id.

examples:
  segwise evaluate --checkpoint runs/exp1/best.pt --data ../shared/data/camvid
  segwise evaluate --checkpoint runs/exp1 --data my_data       # a run folder: its best.pt
  segwise evaluate --checkpoint runs/exp1/best.pt --data my_data --split all --json
  segwise evaluate --checkpoint runs/exp1 --data my_data --metrics dice,iou,hd95,nsd \
      --spacing 0.5,0.5 --nsd-tolerance 1.0
"""

METRICS = ("dice", "iou", "hd", "hd95", "assd", "nsd")
BOUNDARY = ("hd", "hd95", "assd", "nsd")


def _metric_list(text: str) -> tuple[str, ...]:
    """``"dice,hd95"`` -> ("dice", "hd95") (argparse type)."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown metric(s) {bad}; expected a comma list of {', '.join(METRICS)}"
        )
    return names


def _spacing(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a pixel size; expected positive numbers, e.g. 0.5,0.5 (rows,cols)"
        )
    return values



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="a run folder (its best.pt), RUN/best.pt or RUN/last.pt"
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="labelled dataset folder")
    parser.add_argument(
        "--split", default="val", choices=("val", "train", "test", "all"),
        help="which images (default val; test: the ids listed under 'test' in splits.json)"
    )
    parser.add_argument("--out", metavar="DIR", help="report folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON only")
    parser.add_argument("--worst", type=int, default=5, help="list the K worst images (default 5)")
    parser.add_argument("--tile-size", type=int, help="sliding-window tile for large images")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    parser.add_argument("--metrics", type=_metric_list, default=None,
                        help="comma list of dice, iou, hd, hd95, assd, nsd (default dice,iou; "
                             "volumes: dice,iou,hd95,nsd; any of the last four adds all "
                             "boundary metrics)")
    parser.add_argument("--spacing", type=_spacing, metavar="ROWS,COLS",
                        help="physical pixel size for the boundary metrics of 2D images "
                             "(default 1,1); volumes use each file's own voxel size (mm)")
    parser.add_argument("--nsd-tolerance", type=float, default=1.0, metavar="TAU",
                        help="NSD tolerance in the units of --spacing (default 1.0)")
    parser.add_argument("--distance-metric", choices=("euclidean", "chessboard", "taxicab"),
                        default="euclidean",
                        help="distance between pixel centres for the boundary metrics: "
                             "euclidean (default), chessboard (L-inf), taxicab (L1); "
                             "docs/metrics.md")


def run(args: argparse.Namespace) -> int:
    from segwise.cli._common import evaluation_inputs, resolve_checkpoint
    from segwise.inference.predictor import predictor_from_run
    from segwise.inferers.options import PredictOptions
    from segwise.notices import Level, printed

    args.checkpoint = str(resolve_checkpoint(args.checkpoint))
    # warnings only: the data's notices were shown when the model was trained
    with printed(min_level=Level.WARNING):
        loaded, samples, out = evaluation_inputs(args)
        predictor = predictor_from_run(loaded, options=PredictOptions(tile_size=args.tile_size))
        return _EVALUATORS[predictor.kind](args, loaded, predictor, samples, out)


def _run_instance(args: argparse.Namespace, loaded, predictor, samples, out: Path) -> int:
    """Instance checkpoints: DSB score, AP, PQ and COCO AP (cli/_instance.py writes them)."""
    from segwise.api import evaluation_parts, predict_step
    from segwise.cli import _instance
    from segwise.cli._batch import progress_reporter
    from segwise.engine.evaluation import evaluation_loop
    from segwise.engine.progress import ProgressDataset

    wanted = [m for m in (getattr(args, "metrics", None) or ()) if m in BOUNDARY]
    if wanted:
        raise ValueError(f"--metrics {','.join(wanted)}: boundary metrics are for semantic "
                         "checkpoints; instance checkpoints report DSB score, AP, PQ and COCO AP")
    dataset, scorer = evaluation_parts(loaded, predictor.kind, samples)
    result = evaluation_loop(ProgressDataset(dataset, progress_reporter(), parts=10),
                             predict_step(predictor), scorer)
    return _instance.write_report(args, loaded, result, out, dataset=dataset,
                                  predict=predict_step(predictor), ids=[s.id for s in samples])


def _run_semantic(args: argparse.Namespace, loaded, predictor, samples, out: Path) -> int:
    from segwise.api import evaluation_parts, predict_step
    from segwise.cli._batch import progress_reporter
    from segwise.engine.evaluation import BoundarySettings, evaluation_loop
    from segwise.engine.hints import degenerate_prediction_hint
    from segwise.engine.progress import ProgressDataset

    info = loaded.info
    volumes = info.spatial_dims == 3
    wanted = getattr(args, "metrics", None) or (
        ("dice", "iou", "hd95", "nsd") if volumes else ("dice", "iou"))
    if volumes and getattr(args, "spacing", None) is not None:
        raise ValueError("--spacing is for 2D images; volumes are scored in mm with the voxel "
                         "size in each file's header (drop --spacing)")
    boundary = None
    if any(m in BOUNDARY for m in wanted):
        if args.nsd_tolerance < 0:
            raise ValueError(f"--nsd-tolerance {args.nsd_tolerance} is not valid; expected >= 0")
        boundary = BoundarySettings(spacing=args.spacing, tolerance=args.nsd_tolerance,
                                    distance_metric=args.distance_metric)
    dataset, scorer = evaluation_parts(loaded, predictor.kind, samples, boundary=boundary)
    result = evaluation_loop(ProgressDataset(dataset, progress_reporter(), parts=10),
                             predict_step(predictor), scorer)
    report = result.report(worst=args.worst)
    hint = degenerate_prediction_hint(
        {"pixels_per_class": result.matrix.sum(axis=0).tolist(),
         "true_pixels_per_class": result.matrix.sum(axis=1).tolist()},
        list(info.labels.names),
    )
    if hint:
        report["hint"] = f"the model {hint}"
    out.mkdir(parents=True, exist_ok=True)
    _write_files(out, result, report, list(info.labels.names))
    _write_html(out, report, loaded, predictor, dataset, samples)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_tables(report, out, [m for m in wanted if m in BOUNDARY])
    return 0


# one evaluation per prediction kind (keys: segwise.inference.predictor.PredictionKind values)
_EVALUATORS = {"semantic": _run_semantic, "instance": _run_instance}


def _write_html(out: Path, report: dict, loaded, predictor, dataset, samples) -> None:
    """report.html: the tables, confusion matrix, per-image Dice histogram, worst images."""
    from segwise.api import evaluation_parts, predict_step
    from segwise.engine.evaluation import evaluation_loop
    from segwise.viz import plot_distribution, save_overlay_grid
    from segwise.viz.report import write_html_report

    info = loaded.info
    pi = report["per_image"]
    plot_distribution([r["dice"] for r in pi["images"]], out / "per_image_dice.png",
                      xlabel="per-image Dice")
    position = {s.id: i for i, s in enumerate(samples)}
    worst = [position[w["id"]] for w in pi["worst"] if w["id"] in position]
    worst_png = None
    if worst:  # predict the worst images again (a handful) to draw them
        _, scorer = evaluation_parts(loaded, predictor.kind, samples, keep_overlays=len(worst))
        again = evaluation_loop(dataset, predict_step(predictor), scorer, indices=worst)
        worst_png = save_overlay_grid(
            out / "worst.png", again.overlays, labels=info.labels,
            title="worst images (lowest per-image Dice)",
        )
    write_html_report(
        out / "report.html",
        title=f"segwise evaluate: {loaded.checkpoint} on {len(samples)} images",
        summary=report["summary"],
        tables=[("Per class", report["per_class"],
                 ["class", "dice", "iou", "precision", "recall", "pixels",
                  *[k for k in ("hd", "hd95", "assd", "nsd") if k in report["per_class"][0]]]),
                ("Per-image Dice distribution",
                 [{k: pi[k] for k in ("count", "min", "q25", "median", "q75", "max")}],
                 ["count", "min", "q25", "median", "q75", "max"])],
        pictures=[("Confusion matrix (rows: ground truth)", out / "confusion.png"),
                  ("Per-image Dice", out / "per_image_dice.png"),
                  ("Worst images", worst_png)],
        worst=pi["worst"],
        note=report.get("hint"),
    )


def _fmt(value: float | str | None) -> str:
    if isinstance(value, str):  # "inf" from the JSON report
        return value
    return "  n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.4f}"
    )


def _write_files(out: Path, result, report: dict, class_names: list[str]) -> None:
    from segwise.viz import plot_confusion

    (out / "scores.json").write_text(json.dumps(report, indent=2))
    with (out / "per_class.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        keys = list(report["per_class"][0].keys()) if report["per_class"] else []
        writer.writerow(keys)
        for row in report["per_class"]:
            writer.writerow([row[k] for k in keys])
    with (out / "per_image.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        images = report["per_image"]["images"]
        keys = list(images[0]) if images else ["id", "dice", "iou"]
        writer.writerow(keys)  # id, dice, iou, then per class: dice_<c> (hd95_<c>, nsd_<c>)
        for row in images:
            writer.writerow(["" if row[k] is None else row[k] for k in keys])
    with (out / "confusion.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ground_truth\\prediction", *class_names])
        for name, row in zip(class_names, result.matrix.tolist(), strict=True):
            writer.writerow([name, *row])
    plot_confusion(result.matrix, class_names, out / "confusion.png")


def _print_tables(report: dict, out: Path, boundary: list[str] | None = None) -> None:
    from rich.table import Table

    from segwise.cli._common import console as make_console

    console = make_console()
    table = Table(title="per class")
    extra = list(boundary or [])
    for col in ("class", "dice", "iou", "precision", "recall", "pixels", *extra):
        table.add_column(col, justify="right" if col != "class" else "left")
    for row in report["per_class"]:
        table.add_row(
            row["class"], _fmt(row["dice"]), _fmt(row["iou"]), _fmt(row["precision"]),
            _fmt(row["recall"]), str(row["pixels"]), *(_fmt(row.get(m)) for m in extra),
        )
    console.print(table)
    s = report["summary"]
    console.print(
        f"mean Dice {_fmt(s['mean_dice'])} | mean IoU {_fmt(s['mean_iou'])} | "
        f"fw IoU {_fmt(s['fw_iou'])} | pixel accuracy {_fmt(s['pixel_accuracy'])} | "
        f"per-image Dice {_fmt(s['per_image_dice'])}"
    )
    if extra:
        console.print(" | ".join(f"mean {m.upper()} {_fmt(s.get('mean_' + m))}" for m in extra))
    pi = report["per_image"]
    console.print(
        f"per-image Dice: n={pi['count']} min {_fmt(pi['min'])} q25 {_fmt(pi['q25'])} "
        f"median {_fmt(pi['median'])} q75 {_fmt(pi['q75'])} max {_fmt(pi['max'])}"
    )
    worst = ", ".join(f"{w['id']} ({_fmt(w['dice'])})" for w in pi["worst"])
    console.print(f"worst images: {worst}")
    if report.get("hint"):
        console.print(f"note: {report['hint']}")
    console.print(f"report written to {out} (open {out / 'report.html'} in a browser)")
