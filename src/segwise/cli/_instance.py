"""``segwise predict`` / ``segwise evaluate`` for instance checkpoints.

The verbs call :func:`is_instance_checkpoint` first and hand instance checkpoints (model kinds
in :data:`segwise.engine.instance_adapter.INSTANCE_KINDS`) to :func:`predict` /
:func:`evaluate`; semantic checkpoints keep their own code path.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["evaluate", "is_instance_checkpoint", "predict"]

# semantic-only predict flags: (attribute, flag, what to do instead)
_SEMANTIC_ONLY = (
    ("onnx", "--onnx", "export supports semantic models only; use --checkpoint"),
    ("probabilities", "--probabilities", "instance outputs have no class probabilities"),
    ("tta", "--tta", "flip averaging is not defined for instances"),
    ("fill_holes", "--fill-holes", "not available for instances"),
    ("largest_component", "--largest-component", "not available for instances"),
)
# COCO's maxDets is 100, but crowded images (DSB2018 has up to 375 nuclei per image) would
# then count only the 100 best detections; segwise.instance.coco reads AP at any limit.
COCO_MAX_DETECTIONS = 1000


def is_instance_checkpoint(path: str | Path | None) -> bool:
    """Whether ``path`` is a checkpoint of an instance model (cheap: weights are not read).

    Anything unreadable gives False, so that the semantic path reports its own errors.
    """
    import torch

    from segwise.engine.instance_adapter import INSTANCE_KINDS

    if path is None or not Path(path).is_file():
        return False
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return dict(ckpt.get("model_args") or {}).get("kind") in INSTANCE_KINDS
    except Exception:  # not ours to diagnose here
        return False


def _load_image(path: Path, info: Any) -> tuple[Any, Any]:
    """``(normalised float32 (C, H, W), uint8 (C, H, W) for the overlay)``."""
    from segwise.data import normalize_tensor, read_image
    from segwise.data.datasets import image_to_tensor

    unit = image_to_tensor(read_image(path), info, source=path)  # [0, 1], channels checked
    return normalize_tensor(unit, info), (unit * 255).round().byte().numpy()


def _remove_small(pred: Any, min_size: int) -> Any:
    import numpy as np

    from segwise.instance import InstancePrediction

    keep = pred.areas >= min_size
    if keep.all():
        return pred
    inst = np.where(np.isin(pred.instance_map, pred.ids[keep]), pred.instance_map, 0)
    return InstancePrediction.from_label_map(
        inst, labels=pred.labels[keep], scores=pred.scores[keep]
    ).relabel()


def predict(args: argparse.Namespace) -> int:
    """``segwise predict`` for an instance checkpoint (outputs: see predict.py's help)."""
    from segwise.cli._batch import expand_inputs, predict_all, refuse_clashes
    from segwise.engine.checkpoint import load_run
    from segwise.engine.instance_adapter import predict_image
    from segwise.inference.tiling import default_tile_size
    from segwise.instance import save_prediction, write_coco_results_json

    for attr, flag, why in _SEMANTIC_ONLY:
        if getattr(args, attr, None):
            raise ValueError(f"{flag} does not apply to instance checkpoints: {why}")
    images = expand_inputs(args.inputs)
    out = Path(args.out)
    coco = bool(getattr(args, "coco", False))
    if not args.overwrite:
        names = ["_instances.png", "_instances.json", *(["_overlay.png"] if args.overlay else [])]
        paths = [out / f"{p.stem}{suffix}" for p in images for suffix in names]
        refuse_clashes(paths + ([out / "coco_results.json"] if coco else []))
    loaded = load_run(args.checkpoint, device=args.device)
    tile = args.tile_size or default_tile_size(loaded.config.get("data", {}).get("crop_size"))
    predictions: dict[int, Any] = {}
    image_ids = {path: i + 1 for i, path in enumerate(images)}  # COCO image_id: input order

    def one(path: Path) -> dict[str, Any]:
        image, raw = _load_image(path, loaded.info)
        pred = predict_image(
            loaded.model, image, model_args=loaded.model_args, device=loaded.device,
            tile_size=tile,
        )
        if args.min_size > 0:
            pred = _remove_small(pred, args.min_size)
        written = save_prediction(out, path.stem, pred, image=raw if args.overlay else None)
        image_id = image_ids[path]
        predictions[image_id] = pred
        names = loaded.info.class_names
        return {
            "input": str(path),
            "ok": True,
            "outputs": [str(p) for p in written.values()],
            "size": list(pred.shape),
            "instances": len(pred),
            "classes_present": sorted({names[int(c)] for c in pred.labels}),
            **({"coco_image_id": image_id} if coco else {}),
        }

    code = predict_all(images, out, one)
    if coco:
        ids = sorted(predictions)
        target = write_coco_results_json(
            out / "coco_results.json", [predictions[i] for i in ids], image_ids=ids
        )
        print(f"COCO results for {len(ids)} image(s) in {target}")
    return code


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def evaluate(args: argparse.Namespace) -> int:
    """``segwise evaluate`` for an instance checkpoint."""
    from segwise.cli._batch import progress_reporter
    from segwise.cli._common import evaluation_inputs
    from segwise.data import InstanceDataset, eval_transforms
    from segwise.engine.hints import degenerate_prediction_hint
    from segwise.engine.instance_adapter import clean_instances, predict_image
    from segwise.engine.progress import ProgressDataset
    from segwise.inference.tiling import default_tile_size
    from segwise.instance import InstancePrediction
    from segwise.metrics.instance import InstanceMetrics, dsb_score

    loaded, samples, out = evaluation_inputs(args)
    info = loaded.info
    dataset = ProgressDataset(InstanceDataset(samples, info, transform=eval_transforms(info)),
                              progress_reporter(), parts=10)
    tile = args.tile_size or default_tile_size(loaded.config.get("data", {}).get("crop_size"))
    metrics = InstanceMetrics(coco=True, coco_max_detections=COCO_MAX_DETECTIONS)
    per_image = []
    for i in range(len(dataset)):
        item = dataset[i]
        pred = predict_image(
            loaded.model, item["image"], model_args=loaded.model_args, device=loaded.device,
            tile_size=tile,
        )
        target = InstancePrediction.from_target(clean_instances(item["instances"]))
        metrics.update(pred, target)
        per_image.append({"id": item["id"], "dsb_score": dsb_score(pred, target),
                          "ground_truth": len(target), "predicted": len(pred)})
    report = _report(metrics.compute(), per_image, list(info.class_names), args, loaded)
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
    worst = sorted(per_image, key=lambda r: r["dsb_score"])[: max(0, args.worst)]
    per_class = [
        {"class": names[c] if c < len(names) else str(c), "label": c, **vals}
        for c, vals in sorted(result.pq_per_class.items())
    ]
    return _nan_to_none({
        "checkpoint": str(loaded.checkpoint),
        "method": loaded.model_args["kind"],
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
