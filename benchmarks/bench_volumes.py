"""3D volumes (issue 26): segwise's CLI vs a hand-written MONAI loop on MSD Hippocampus.

Both arms do the same work: the same patch, batch, number of optimizer steps, Dice + CE loss,
AdamW and learning rate, seed and CPU threads; then each predicts the validation volumes as
NIfTI label files, and ONE evaluator in this file scores both (Dice and HD95 in mm per class,
from the label file's spacing, with ``segwise.metrics``).

* ``monai``: MONAI's ``UNet`` (16-32-64-128, residual units, instance norm), LoadImaged ->
  EnsureChannelFirstd -> per-volume z-score -> pad to the patch -> RandCropByPosNegLabeld
  (pos 1 : neg 2) -> flips on all three axes; ``DiceCELoss``; AdamW (weight decay 1e-4, as
  segwise's default) at a constant learning rate, no gradient clipping; then
  ``sliding_window_inference`` (roi = patch, 4 windows a batch, overlap 0.5, Gaussian), argmax,
  written with nibabel under the image's affine and header.
* ``segwise``: ``segwise train --data ROOT --model resunet3d --patch-size ... --out RUN`` then
  ``segwise predict --checkpoint RUN/last.pt VAL --out PRED``, where VAL is a folder of symlinks
  to the validation images under ``--out`` (``last.pt``: the final weights, as the MONAI arm
  uses; ``--segwise-checkpoint best`` takes the run's pick). A refused flag or a failed run is
  reported as ``{"error": ...}`` in the JSON, so the bench can be re-run as the 3D CLI lands.

Each training and each prediction runs in its own process, so wall time and peak RSS
(``wait4``'s ``ru_maxrss``: the process, or the largest of its children) are per stage.
``train_seconds`` / ``infer_seconds`` are those processes' wall times (start-up included, alike
for both arms); ``train_loop_seconds`` is the training loop alone (the MONAI loop's clock,
the sum of segwise's ``epoch_seconds``), and ``steps_per_s`` divides by it; ``volumes_per_s``
divides by the prediction process's wall time (``volumes_per_s_loop``: the MONAI loop alone).

    python benchmarks/bench_volumes.py --quick --arms monai              # smoke test, ~1 min
    nice -n 10 python benchmarks/bench_volumes.py --steps 300 --batch 4 --threads 1 --seeds 0
    python benchmarks/bench_volumes.py --seeds 0 1 2 --segwise-model resenc_unet3d \\
        --segwise-arg=--schedule --segwise-arg=constant     # extra flags for segwise train

Writes JSON (default ``benchmarks/results/bench_volumes.json``); predictions and run folders
go under ``--out`` (default a new temporary folder, printed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLASSES = {1: "anterior", 2: "posterior"}  # label value -> name (0 is background)
NUM_CLASSES = 3
AFFINE_TOLERANCE = 1e-4  # mm per affine entry: the same geometry (segwise.data.volumes' value)
WEIGHT_DECAY = 1e-4  # segwise train's default, given to the MONAI loop's AdamW too


# --------------------------------------------------------------------------- the evaluator


def score_volume(pred: np.ndarray, label: np.ndarray, spacing) -> dict:
    """Dice and HD95 (in the units of ``spacing``) of one prediction, per foreground class.

    Args:
        pred: (X, Y, Z) integer label volume, values in {0, 1, 2}.
        label: (X, Y, Z) reference label volume of the same shape.
        spacing: voxel size per array axis (3 numbers, mm).

    Returns:
        ``{"dice": {name: float}, "hd95_mm": {name: float}}``; Dice is 1.0 when a class is absent
        from both, HD95 is inf when it is absent from exactly one and NaN when absent from both
        (``segwise.metrics``' documented rules).
    """
    import torch

    from segwise.metrics import dice_score, hausdorff_distance

    p = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.int64))
    t = torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
    hd = hausdorff_distance(p[None], t[None], num_classes=NUM_CLASSES, percentile=95.0,
                            spacing=tuple(float(s) for s in spacing))[0]
    return {
        "dice": {name: float(dice_score(p == c, t == c)) for c, name in CLASSES.items()},
        "hd95_mm": {name: float(hd[c]) for c, name in CLASSES.items()},
    }


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def evaluate(pred_dir: Path, root: Path, ids: list[str]) -> dict:
    """Score ``pred_dir/<id>.nii.gz`` against ``root/labels/<id>.nii.gz`` for every id.

    A missing file, a shape or affine that differs from the label's is an entry of ``errors``
    and the volume is left out of the means. HD95 means are over the volumes where it is
    finite; ``hd95_undefined`` counts the others (a class predicted or labelled alone).
    """
    import nibabel as nib

    per_volume: dict[str, dict] = {}
    errors: list[str] = []
    for vid in ids:
        pred_path, label_path = pred_dir / f"{vid}.nii.gz", root / "labels" / f"{vid}.nii.gz"
        if not pred_path.is_file():
            errors.append(f"{vid}: no prediction at {pred_path}")
            continue
        pred_img, label_img = nib.load(str(pred_path)), nib.load(str(label_path))
        if pred_img.shape != label_img.shape:
            errors.append(f"{vid}: prediction shape {pred_img.shape} != label {label_img.shape}")
            continue
        if not np.allclose(pred_img.affine, label_img.affine, rtol=0, atol=AFFINE_TOLERANCE):
            errors.append(f"{vid}: prediction affine {pred_img.affine.tolist()} != label "
                          f"affine {label_img.affine.tolist()}")
            continue
        label = np.asarray(label_img.dataobj)
        if not np.array_equal(label, np.round(label)):
            errors.append(f"{vid}: label {label_path} has non-integer values")
            continue
        spacing = [float(z) for z in label_img.header.get_zooms()[:3]]
        per_volume[vid] = score_volume(np.asarray(pred_img.dataobj), label, spacing)
        per_volume[vid]["spacing"] = spacing
    out: dict = {"n_volumes": len(per_volume), "errors": errors, "dice": {}, "hd95_mm": {},
                 "hd95_undefined": {}}
    for name in CLASSES.values():
        dice = [v["dice"][name] for v in per_volume.values()]
        hd = [v["hd95_mm"][name] for v in per_volume.values()]
        finite = [h for h in hd if math.isfinite(h)]
        out["dice"][name] = float(np.mean(dice)) if dice else None
        out["hd95_mm"][name] = float(np.mean(finite)) if finite else None
        out["hd95_undefined"][name] = len(hd) - len(finite)
    fg = [np.mean(list(v["dice"].values())) for v in per_volume.values()]
    out["mean_fg_dice"] = float(np.mean(fg)) if fg else None
    for v in per_volume.values():  # JSON has no inf/NaN
        v["hd95_mm"] = {k: _finite_or_none(h) for k, h in v["hd95_mm"].items()}
    out["per_volume"] = per_volume
    return out


# --------------------------------------------------------------------------- processes


def run_measured(cmd: list[str], log: Path, threads: int) -> dict:
    """Run ``cmd`` (output to ``log``); its exit code, wall seconds and peak RSS in MiB."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"returncode": proc.returncode, "seconds": seconds,
            "peak_rss_mib": usage.ru_maxrss / 1024, "command": shlex.join(cmd)}  # KiB on Linux


def _failure(stage: str, run: dict, log: Path) -> dict:
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    return {"error": f"{stage} exited with {run['returncode']}: " + "\n".join(tail),
            "failed_command": run["command"], "log": str(log),
            "seconds_before_failure": run["seconds"], "peak_rss_mib": run["peak_rss_mib"]}


def _val_folder(root: Path, ids: list[str], folder: Path) -> Path:
    """A folder of symlinks to the validation images (nothing copied, nothing in the repo)."""
    folder.mkdir(parents=True, exist_ok=True)
    for vid in ids:
        link = folder / f"{vid}.nii.gz"
        if not link.exists():
            link.symlink_to(root / "images" / f"{vid}.nii.gz")
    return folder


def _arm_record(train: dict, predict: dict, steps: int, n_val: int, loop_seconds: float | None,
                scores: dict) -> dict:
    return {
        "train_seconds": train["seconds"],
        "train_loop_seconds": loop_seconds,
        "steps": steps,
        "steps_per_s": steps / loop_seconds if loop_seconds else steps / train["seconds"],
        "infer_seconds": predict["seconds"],
        "volumes_per_s": n_val / predict["seconds"],
        "volumes_per_s_loop": None,  # known only where the arm times its own loop
        "peak_rss_mib": max(train["peak_rss_mib"], predict["peak_rss_mib"]),
        "peak_rss_mib_train": train["peak_rss_mib"],
        "peak_rss_mib_predict": predict["peak_rss_mib"],
        "dice": scores["dice"],
        "hd95_mm": scores["hd95_mm"],
        "hd95_undefined": scores["hd95_undefined"],
        "mean_fg_dice": scores["mean_fg_dice"],
        "n_volumes_scored": scores["n_volumes"],
        "evaluator_errors": scores["errors"],
        "per_volume": scores["per_volume"],
        "commands": [train["command"], predict["command"]],
    }


def monai_arm(args, seed: int, work: Path, root: Path, splits: dict) -> dict:
    """Train and predict with the hand-written MONAI loop, each in its own process."""
    work.mkdir(parents=True, exist_ok=True)
    spec = {"root": str(root), "train_ids": splits["train"], "val_ids": splits["val"],
            "patch": args.patch, "batch": args.batch, "steps": args.steps, "lr": args.lr,
            "seed": seed, "threads": args.threads, "workers": args.workers,
            "device": args.device,
            "model": str(work / "monai_model.pt"), "pred_dir": str(work / "monai_pred"),
            "result": str(work / "monai_result.json")}
    (work / "monai_spec.json").write_text(json.dumps(spec))
    me = [sys.executable, str(Path(__file__).resolve()), "--worker-spec",
          str(work / "monai_spec.json")]
    train = run_measured([*me, "--worker", "monai-train"], work / "monai_train.log", args.threads)
    if train["returncode"]:
        return _failure("MONAI training", train, work / "monai_train.log")
    loop = json.loads(Path(spec["result"]).read_text())
    predict = run_measured([*me, "--worker", "monai-predict"], work / "monai_predict.log",
                           args.threads)
    if predict["returncode"]:
        return _failure("MONAI prediction", predict, work / "monai_predict.log")
    infer = json.loads(Path(spec["result"]).read_text())
    scores = evaluate(Path(spec["pred_dir"]), root, splits["val"])
    record = _arm_record(train, predict, args.steps, len(splits["val"]), loop["train_loop_seconds"],
                         scores)
    record.update(final_loss=loop["final_loss"], infer_loop_seconds=infer["infer_loop_seconds"],
                  volumes_per_s_loop=len(splits["val"]) / infer["infer_loop_seconds"])
    return record


def _segwise_cli() -> list[str]:
    script = Path(sys.executable).with_name("segwise")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "segwise.cli.main"]


def segwise_arm(args, seed: int, work: Path, root: Path, splits: dict) -> dict:
    """``segwise train`` then ``segwise predict`` as subprocesses (segwise's public path)."""
    work.mkdir(parents=True, exist_ok=True)
    run_dir, pred_dir = work / "segwise_run", work / "segwise_pred"
    patch = ",".join(str(p) for p in args.patch)
    train_cmd = [
        *_segwise_cli(), "train", "--data", str(root), "--model", args.segwise_model,
        "--patch-size", patch,
        "--batch-size", str(args.batch), "--max-steps", str(args.steps), "--lr", str(args.lr),
        "--optimizer", "adamw", "--loss", "dicece", "--threads", str(args.threads),
        "--seed", str(seed), "--workers", str(args.workers), "--device", args.device,
        "--amp", "off",
        "--out", str(run_dir), "--quiet", *args.segwise_arg]  # fmt: skip
    train = run_measured(train_cmd, work / "segwise_train.log", args.threads)
    model_file = run_dir / "model_args.json"  # the architecture segwise resolved, as it says
    model_args = json.loads(model_file.read_text()) if model_file.is_file() else None
    if train["returncode"]:
        return {**_failure("segwise train", train, work / "segwise_train.log"),
                "model_args": model_args}
    val_dir = _val_folder(root, splits["val"], work / "val_images")
    checkpoint = run_dir if args.segwise_checkpoint == "best" else run_dir / "last.pt"
    predict_cmd = [
        *_segwise_cli(), "predict", "--checkpoint", str(checkpoint), str(val_dir),
        "--out", str(pred_dir),
        "--overlap", "0.5", "--device", args.device, "--amp", "off",
        "--overwrite"]  # fmt: skip
    predict = run_measured(predict_cmd, work / "segwise_predict.log", args.threads)
    if predict["returncode"]:
        return _failure("segwise predict", predict, work / "segwise_predict.log")
    records = []
    metrics_file = run_dir / "metrics.jsonl"
    if metrics_file.is_file():
        records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
    loop = sum(r["epoch_seconds"] for r in records if "epoch_seconds" in r) or None
    steps = max((r["step"] for r in records if "step" in r), default=args.steps)
    scores = evaluate(pred_dir, root, splits["val"])
    return {**_arm_record(train, predict, steps, len(splits["val"]), loop, scores),
            "model_args": model_args}


# --------------------------------------------------------------------------- MONAI workers


def _monai_train(spec: dict) -> None:
    import torch
    from monai.data import DataLoader, Dataset
    from monai.losses import DiceCELoss
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        LoadImaged,
        NormalizeIntensityd,
        RandCropByPosNegLabeld,
        RandFlipd,
        SpatialPadd,
    )
    from monai.utils import set_determinism

    torch.set_num_threads(spec["threads"])
    set_determinism(seed=spec["seed"])
    root, keys = Path(spec["root"]), ["image", "label"]
    files = [{"image": str(root / "images" / f"{i}.nii.gz"),
              "label": str(root / "labels" / f"{i}.nii.gz")} for i in spec["train_ids"]]
    transform = Compose([
        LoadImaged(keys, image_only=True),
        EnsureChannelFirstd(keys),
        NormalizeIntensityd("image", nonzero=False),
        SpatialPadd(keys, spatial_size=spec["patch"]),  # a few volumes are smaller than the patch
        RandCropByPosNegLabeld(keys, label_key="label", spatial_size=spec["patch"], pos=1, neg=2,
                               num_samples=1),
        *[RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(3)],
    ])
    loader = DataLoader(Dataset(files, transform), batch_size=spec["batch"], shuffle=True,
                        num_workers=spec["workers"], drop_last=True)
    device = torch.device(spec.get("device", "cpu"))
    model = _monai_unet().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=WEIGHT_DECAY)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    model.train()
    step, loss = 0, torch.tensor(float("nan"))
    t0 = time.perf_counter()
    while step < spec["steps"]:
        for batch in loader:
            image = batch["image"].as_tensor().to(device)  # (B, 1, *patch)
            label = batch["label"].as_tensor().to(device)
            loss = loss_fn(model(image), label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step >= spec["steps"]:
                break
    seconds = time.perf_counter() - t0
    torch.save(model.state_dict(), spec["model"])
    Path(spec["result"]).write_text(json.dumps({"train_loop_seconds": seconds,
                                                "final_loss": float(loss)}))


def _monai_unet():
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=1, out_channels=NUM_CLASSES,
                channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2, norm="instance")


def _monai_predict(spec: dict) -> None:
    import nibabel as nib
    import torch
    from monai.inferers import sliding_window_inference
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, NormalizeIntensityd

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec.get("device", "cpu"))
    model = _monai_unet()
    model.load_state_dict(torch.load(spec["model"], weights_only=True))
    model.to(device).eval()
    transform = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image"),
                         NormalizeIntensityd("image", nonzero=False)])
    out = Path(spec["pred_dir"])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for vid in spec["val_ids"]:
        path = Path(spec["root"]) / "images" / f"{vid}.nii.gz"
        image = transform({"image": str(path)})["image"].as_tensor()[None].to(device)
        with torch.inference_mode():
            logits = sliding_window_inference(image, roi_size=spec["patch"], sw_batch_size=4,
                                              predictor=model, overlap=0.5, mode="gaussian")
        labels = logits.argmax(1)[0].cpu().numpy().astype(np.uint8)  # (X, Y, Z)
        source = nib.load(str(path))
        header = source.header.copy()
        header.set_data_dtype(np.uint8)
        header.set_slope_inter(1.0, 0.0)
        nib.save(nib.Nifti1Image(labels, source.affine, header), str(out / f"{vid}.nii.gz"))
    seconds = time.perf_counter() - t0
    Path(spec["result"]).write_text(json.dumps({"infer_loop_seconds": seconds}))


# --------------------------------------------------------------------------- main


def _summary(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    keys = ("mean_fg_dice", "steps_per_s", "volumes_per_s", "train_seconds", "peak_rss_mib")
    out = {"runs_ok": len(ok), "runs_failed": len(runs) - len(ok)}
    for key in keys:
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                        "values": values}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/msd_hippocampus",
                        help="dataset folder; a relative path is taken from the repo root")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (300; 20 quick)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", default="32,48,32", help="X,Y,Z voxels")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="loader processes, both arms")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--arms", nargs="+", choices=["monai", "segwise"],
                        default=["monai", "segwise"])
    parser.add_argument("--val-limit", type=int, default=None,
                        help="score the first N val volumes (all 30; 4 quick)")
    parser.add_argument("--quick", action="store_true", help="20 steps, 4 val volumes")
    parser.add_argument("--segwise-model", choices=["resunet3d", "unet3d", "resenc_unet3d"],
                        default="resunet3d", help="segwise's 3D model (default resunet3d, its "
                        "default for volumes: the same shape and cost as MONAI's UNet here)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda, both arms "
                        "(full precision in both: segwise train runs with --amp off)")
    parser.add_argument("--segwise-arg", action="append", default=[],
                        help="extra flag for segwise train (repeatable; --segwise-arg=--flag)")
    parser.add_argument("--segwise-checkpoint", choices=["last", "best"], default="last")
    parser.add_argument("--out", default=None, help="work folder (default: a new temp dir)")
    parser.add_argument("--json", default=str(REPO / "benchmarks/results/bench_volumes.json"))
    parser.add_argument("--worker", choices=["monai-train", "monai-predict"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--worker-spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 20 if args.quick else 300
    if args.val_limit is None and args.quick:
        args.val_limit = 4
    try:
        args.patch = [int(p) for p in args.patch.split(",")]
    except ValueError:
        parser.error(f"--patch {args.patch!r}: expected three integers such as 32,48,32")
    if len(args.patch) != 3 or min(args.patch) < 1:
        parser.error(f"--patch {args.patch}: expected three positive integers such as 32,48,32")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(Path(args.worker_spec).read_text())
        (_monai_train if args.worker == "monai-train" else _monai_predict)(spec)
        return {}
    root = Path(args.data)
    root = (root if root.is_absolute() else REPO / root).resolve()
    if not (root / "splits.json").is_file():
        sys.exit(f"{root}: no splits.json; pass --data with the MSD Hippocampus folder")
    splits = json.loads((root / "splits.json").read_text())
    splits["val"] = splits["val"][: args.val_limit]
    work = Path(args.out or tempfile.mkdtemp(prefix="bench_volumes_")).resolve()
    if work.is_relative_to(REPO):
        sys.exit(f"--out {work} is inside the repository; pick a folder outside it")
    print(f"work folder: {work}", flush=True)
    import torch

    runs: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    for seed in args.seeds:  # arms alternate within a seed, so load drift hits both alike
        for arm in args.arms:
            fn = monai_arm if arm == "monai" else segwise_arm
            record = fn(args, seed, work / f"seed{seed}", root, splits)
            record["seed"] = seed
            runs[arm].append(record)
            brief = {k: record.get(k) for k in ("error", "mean_fg_dice", "steps_per_s",
                                                "volumes_per_s", "peak_rss_mib") if k in record}
            print(json.dumps({"arm": arm, "seed": seed, **brief}), flush=True)
    report = {
        "benchmark": "3D segmentation at equal work: segwise CLI vs hand-written MONAI loop, "
                     "one evaluator (Dice, HD95 mm from the label's spacing, segwise.metrics)",
        "data": str(root),
        "setup": {"steps": args.steps, "batch": args.batch, "patch": args.patch, "lr": args.lr,
                  "optimizer": f"AdamW (weight decay {WEIGHT_DECAY})", "loss": "Dice + CE",
                  "threads": args.threads, "workers": args.workers, "seeds": args.seeds,
                  "val_volumes": splits["val"], "segwise_model": args.segwise_model,
                  "segwise_args": args.segwise_arg, "segwise_checkpoint": args.segwise_checkpoint},
        "notes": [
            "train_seconds/infer_seconds: wall time of the process (start-up included); "
            "train_loop_seconds: the loop alone; steps_per_s = steps / train_loop_seconds; "
            "volumes_per_s = volumes / infer_seconds (like for like); volumes_per_s_loop: "
            "the MONAI prediction loop alone (read, window, argmax, write), no start-up",
            "MONAI loop: constant lr, no gradient clipping; segwise train keeps its own "
            "defaults (schedule, warmup, grad clip, end-of-epoch validation on the val split) "
            "unless --segwise-arg says otherwise",
            "segwise predict uses its default tile size; the MONAI arm windows at the patch",
            "the architectures are each side's default: MONAI UNet 16-32-64-128 with instance "
            "norm; segwise's as resolved in runs[segwise][i].model_args (widths, norm); "
            "--segwise-arg=--model-option --segwise-arg=KEY=VALUE changes it",
            "hd95_mm means are over volumes where HD95 is finite; hd95_undefined counts others",
        ],
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": args.threads,
                    "cpu_count": os.cpu_count(), "monai": _version("monai"),
                    "segwise": _version("segwise")},
        "work_folder": str(work),
        "runs": runs,
        "summary": {arm: _summary(r) for arm, r in runs.items()},
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {out}")
    return report


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
