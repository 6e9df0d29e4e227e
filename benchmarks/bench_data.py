"""Data pipeline throughput on CamVid and dsb2018 from ../shared/data:

- ``augment``: the training preset per core (one thread each, the same decoded images, one
  process, pipelines interleaved round by round): segwise vs albumentations (the preset's
  steps, and one ``Affine`` + crop) vs torchvision v2 steps on float (segwise before issue 14);
- ``train``: training steps of a small model with the augmentation on the CPU (per item) vs
  on the device (per batch, the loader only decodes) vs on the device with resident data;
  ``--device cuda`` runs the same comparison on a GPU;
- ``loader``: decoding (torchvision.io vs PIL), the train pipeline through ``make_loader`` with
  0 and 2 workers, and ``inspect_dataset`` wall time;
- ``instances`` (instance-label data, dsb2018): the Instance item's two steps, segwise (objects
  written inside their boxes; boxes from occupied rows/columns) vs the dense reference (K*H*W
  comparisons; ``torchvision.ops.masks_to_boxes``) on the same label maps and augmented items,
  interleaved round by round, and the whole item in ms.

    .venv/bin/python benchmarks/bench_data.py [--data-root ../shared/data] [--images 48]
        [--workers 0 2] [--sections augment train loader instances] [--aug-images 24]
        [--rounds 7]
        [--device cpu] [--train-crop 256] [--train-batch 8] [--train-steps 4]
        [--out benchmarks/results/data.json]

Writes JSON (figures in images/s; wall-clock seconds for inspect). Numbers depend on the machine
and its load; compare only figures from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segwise.data import (
    SegmentationDataset,
    discover_dataset,
    inspect_dataset,
    make_loader,
    read_image,
    train_transforms,
)

REPO = Path(__file__).resolve().parents[1]
CROPS = {"camvid": (352, 480), "dsb2018": (256, 256)}


def _decode_rate(paths: list[Path], fn) -> float:
    fn(paths[0])  # warm-up (imports, caches)
    t = time.perf_counter()
    for p in paths:
        fn(p)
    return len(paths) / (time.perf_counter() - t)


def _pil(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _pipeline_rate(ds, workers: int, n_images: int, batch_size: int) -> float:
    loader = make_loader(ds, batch_size=batch_size, shuffle=True, workers=workers, seed=0)
    it = iter(loader)
    next(it)  # warm-up: worker start-up is not throughput
    seen, t = 0, time.perf_counter()
    while seen < n_images:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        seen += batch["image"].shape[0]
    rate = seen / (time.perf_counter() - t)
    del it, loader
    return rate


def bench(root: Path, name: str, args) -> dict:
    t = time.perf_counter()
    report = inspect_dataset(root)
    inspect_s = time.perf_counter() - t
    t = time.perf_counter()
    index = discover_dataset(root)  # scans are cached by inspect: this is the warm cost
    discover_warm_s = time.perf_counter() - t
    paths = [s.image_path for s in index.train[: args.images]]
    out = {
        "images_in_dataset": len(index.samples),
        "inspect_s": round(inspect_s, 2),
        "inspect_problems": report.to_dict()["problem_counts"],
        "discover_after_inspect_s": round(discover_warm_s, 2),
        "decode_images_per_s": {
            "segwise.read_image (torchvision.io)": round(_decode_rate(paths, read_image), 1),
            "PIL": round(_decode_rate(paths, _pil), 1),
        },
        "crop_size": list(CROPS[name]),
        "batch_size": args.batch_size,
        "train_pipeline_images_per_s": {},
    }
    info = index.info
    tf = train_transforms(info, crop_size=CROPS[name], rotation=10, color_jitter=0.2)
    rates = out["train_pipeline_images_per_s"]
    threads = torch.get_num_threads()
    for workers in args.workers:
        ds = SegmentationDataset(index.train, info, transform=tf)
        rate = _pipeline_rate(ds, workers, args.images, args.batch_size)
        rates[f"workers={workers}, main torch threads={threads}"] = round(rate, 1)
    # Workers run with 1 torch thread each; in the main process intra-op threads fight over
    # the CPUs on small per-image ops, so time workers=0 with 1 thread as well.
    torch.set_num_threads(1)
    try:
        ds = SegmentationDataset(index.train, info, transform=tf)
        rates["workers=0, main torch threads=1"] = round(
            _pipeline_rate(ds, 0, args.images, args.batch_size), 1)
        ds = SegmentationDataset(index.train[: args.images], info, transform=tf, cache=True)
        for i in range(len(ds)):
            ds[i]  # fill the cache
        rates["workers=0, main torch threads=1, cache=True (warm)"] = round(
            _pipeline_rate(ds, 0, args.images, args.batch_size), 1)
    finally:
        torch.set_num_threads(threads)
    return out


# ---------------------------------------------------------------------------------------------
# Augmentation per core: segwise vs albumentations (and torchvision step by step), same images
# ---------------------------------------------------------------------------------------------


def _torchvision_steps(info, crop, jitter: float):
    """The preset as it was before issue 14: torchvision v2 steps on float images (a peer)."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from segwise.data.transforms import RandomScale

    fill = {tv_tensors.Image: list(info.mean), tv_tensors.Mask: info.labels.pad_value}
    steps = [RandomScale((0.5, 2.0)), v2.RandomCrop(crop, pad_if_needed=True, fill=fill),
             v2.RandomHorizontalFlip(), v2.RandomRotation(10, fill=fill)]
    if jitter:
        steps.append(v2.ColorJitter(jitter, jitter, jitter, jitter / 5))
    return v2.Compose(steps)


def _albumentations(info, crop, jitter: float, *, single_warp: bool):
    """The same preset written with albumentations (uint8 in, normalised CHW tensors out)."""
    import albumentations as A
    import cv2
    from albumentations.pytorch import ToTensorV2

    h, w = crop
    pad = {"border_mode": cv2.BORDER_CONSTANT, "fill": [round(m * 255) for m in info.mean],
           "fill_mask": info.labels.pad_value}
    if single_warp:  # scale + rotation in one Affine, then pad + crop (no resampling)
        geometry = [A.Affine(scale=(0.5, 2.0), rotate=(-10, 10), p=1.0, **pad)]
    else:  # the preset's order: scale, pad + crop, flip, rotation
        geometry = [A.RandomScale(scale_limit=(-0.5, 1.0), p=1.0)]
    geometry += [A.PadIfNeeded(h, w, **pad), A.RandomCrop(h, w), A.HorizontalFlip()]
    if not single_warp:
        geometry.append(A.Rotate(limit=10, p=1.0, **pad))
    colour = [A.ColorJitter(jitter, jitter, jitter, jitter / 5, p=1.0)] if jitter else []
    return A.Compose(geometry + colour + [A.Normalize(mean=info.mean, std=info.std,
                                                      max_pixel_value=255.0), ToTensorV2()])


def _interleaved(pipelines: dict, rounds: int, n_items: int) -> dict:
    """images/s per pipeline: ``rounds`` rounds, each running every pipeline over the same
    items in turn (load changes hit all of them alike); median over rounds, the median
    per-round ratio to the first pipeline, the ratio of the medians, and every round's time
    (the two ratios disagree when the load swings within rounds)."""
    times: dict[str, list[float]] = {k: [] for k in pipelines}
    for fn in pipelines.values():
        fn()  # warm-up: imports, caches, first-call costs
    for _ in range(rounds):
        for name, fn in pipelines.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    first = next(iter(pipelines))
    out = {}
    for name, ts in times.items():
        ratios = sorted(a / b for a, b in zip(times[first], ts, strict=True))
        out[name] = {"images_per_s": round(n_items / float(np.median(ts)), 1),
                     f"vs_{first}": round(float(ratios[len(ratios) // 2]), 2),
                     "vs_first_ratio_of_medians": round(float(np.median(times[first])
                                                              / np.median(ts)), 2),
                     "seconds_per_round": [round(t, 4) for t in ts]}
    return out


def warp_backends(images: list, masks: list, crop: tuple[int, int], rounds: int) -> dict:
    """Images/s of one affine warp of image (bilinear) + mask (nearest) to the crop, per
    backend, with the same random matrices: the measurement behind the choice of OpenCV."""
    import torch.nn.functional as Fn
    from torchvision.transforms.v2 import functional as TF

    from segwise.data.affine import AffineRanges, output_to_source, sample_affine, warp

    ranges = AffineRanges(crop_size=crop, scale=(0.5, 2.0), rotation=10.0, hflip=True)
    g = torch.Generator().manual_seed(0)
    params = sample_affine(len(images), ranges, generator=g)
    sizes = np.array([im.shape[:2] for im in images])
    inverse = output_to_source(params, sizes, crop)
    ch, cw = crop

    def opencv():
        for im, m, a in zip(images, masks, inverse, strict=True):
            warp(im, a, crop, nearest=False, fill=0.0)
            warp(m.astype(np.uint8), a, crop, nearest=True, fill=255)

    def grid_sample():
        for im, m, a in zip(images, masks, inverse, strict=True):
            h, w = im.shape[:2]
            x = torch.from_numpy(im).permute(2, 0, 1)[None].float()
            ys, xs = torch.meshgrid(torch.arange(ch, dtype=torch.float32),
                                    torch.arange(cw, dtype=torch.float32), indexing="ij")
            t = torch.from_numpy(a).float()
            gx = (2 * (t[0, 0] * xs + t[0, 1] * ys + t[0, 2]) + 1) / w - 1
            gy = (2 * (t[1, 0] * xs + t[1, 1] * ys + t[1, 2]) + 1) / h - 1
            grid = torch.stack([gx, gy], -1)[None]
            Fn.grid_sample(x, grid, mode="bilinear", align_corners=False)
            Fn.grid_sample(torch.from_numpy(m)[None, None].float(), grid, mode="nearest",
                           align_corners=False)

    def torchvision_affine():
        for k, (im, m) in enumerate(zip(images, masks, strict=True)):
            x = torch.from_numpy(im).permute(2, 0, 1)
            kw = {"angle": float(params.angle[k]), "translate": [0, 0],
                  "scale": float(params.scale[k]), "shear": [0.0, 0.0]}
            TF.affine(x, **kw)[:, :ch, :cw]
            TF.affine(torch.from_numpy(m)[None], **kw, fill=255)[:, :ch, :cw]

    return _interleaved({"OpenCV warpAffine, uint8": opencv,
                         "torch grid_sample, float32": grid_sample,
                         "torchvision F.affine, uint8 (+ crop)": torchvision_affine},
                        rounds, len(images))


def augment_rates(index, name: str, args) -> dict:
    """The training preset per core, one thread for each library, on the same decoded images:
    uint8 arrays in memory -> normalised float ``(C, H, W)`` tensor + int64 mask."""
    import cv2
    from torchvision import tv_tensors

    from segwise.data import read_mask
    from segwise.data.datasets import image_to_tensor, normalize_tensor

    info, crop = index.info, CROPS[name]
    samples = index.train[: args.aug_images]
    images = [read_image(s.image_path) for s in samples]
    images = [im if im.shape[-1] == 3 else np.repeat(im[..., :1], 3, -1)[..., :3] for im in images]
    masks = [read_mask(s.mask_path, info) for s in samples]
    out: dict = {"images": len(images), "crop_size": list(crop), "rounds": args.rounds}
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        out["warp_backends"] = warp_backends(images, masks, crop, args.rounds)
        print(name, "warp backends", json.dumps(out["warp_backends"]), flush=True)
        for jitter in (0.2, 0.0):
            seg = train_transforms(info, crop_size=crop, rotation=10, color_jitter=jitter)
            old = _torchvision_steps(info, crop, jitter)
            alb = _albumentations(info, crop, jitter, single_warp=False)
            alb1 = _albumentations(info, crop, jitter, single_warp=True)

            def run_seg(tf=seg):
                for im, m in zip(images, masks, strict=True):
                    image = image_to_tensor(im, info, keep_uint8=True)
                    item = tf({"image": tv_tensors.Image(image),
                               "mask": tv_tensors.Mask(torch.from_numpy(m))})
                    normalize_tensor(item["image"].as_subclass(torch.Tensor), info)

            def run_old(tf=old):
                for im, m in zip(images, masks, strict=True):
                    item = tf({"image": tv_tensors.Image(image_to_tensor(im, info)),
                               "mask": tv_tensors.Mask(torch.from_numpy(m))})
                    normalize_tensor(item["image"].as_subclass(torch.Tensor), info)

            def run_alb(tf):
                for im, m in zip(images, masks, strict=True):
                    r = tf(image=im, mask=m)
                    r["mask"].long()  # ToTensorV2 made it a tensor

            pipelines = {
                "albumentations (preset's steps)": partial(run_alb, alb),
                "segwise (one OpenCV warp, uint8)": run_seg,
                "albumentations (one Affine + crop)": partial(run_alb, alb1),
                "torchvision v2 steps, float (segwise before)": run_old,
            }
            key = f"color_jitter={jitter}" if jitter else "geometry only (color_jitter=0)"
            out[key] = _interleaved(pipelines, args.rounds, len(images))
            print(name, key, json.dumps(out[key]), flush=True)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    return out


# ---------------------------------------------------------------------------------------------
# Augmentation on the CPU vs on the device, inside training steps of a small model
# ---------------------------------------------------------------------------------------------


def train_rates(index, name: str, args) -> dict:
    """Training images/s of a small model with the augmentation on the CPU (per item, in the
    main process as the 2-CPU default has it) vs on the device (per batch; the loader only
    decodes) vs on the device with the decoded set resident. Same model, crop, batch, steps;
    the modes alternate round by round. ``--device cuda`` runs it on a GPU (not run here)."""
    from segwise.data import SegmentationDataset
    from segwise.data.device_augment import DeviceAugment, ItemSize, ResidentBatches
    from segwise.data.loaders import loader_settings
    from segwise.losses import create_loss
    from segwise.models import create_model

    info, device = index.info, torch.device(args.device)
    crop, batch = args.train_crop, args.train_batch
    samples = index.train[: args.train_images]
    preset = {"scale": (0.5, 2.0), "rotation": 10.0, "color_jitter": 0.2}
    settings = loader_settings(device, workers=args.train_workers)
    cpu_ds = SegmentationDataset(samples, info, cache=True, transform=train_transforms(
        info, crop_size=crop, **preset))
    raw_ds = SegmentationDataset(samples, info, cache=True, transform=ItemSize(),
                                 normalize=False)
    for i in range(len(samples)):  # decode once: the modes differ in augmentation only
        cpu_ds[i], raw_ds[i]
    aug = DeviceAugment(info, crop_size=crop, **preset)
    resident = ResidentBatches(raw_ds, batch_size=batch, device=device)
    model = create_model(args.train_model, encoder=None, in_channels=info.in_channels,
                         num_classes=info.labels.out_channels,  # as the engine
                         **json.loads(args.train_model_options))
    model = model.to(device)
    loss_fn = create_loss("dicece", labels=info.labels)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(b: dict) -> None:
        x = b["image"].to(device, non_blocking=True)
        y = b["mask"].to(device, non_blocking=True)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def batches(mode: str):
        if mode == "resident":
            while True:
                for b in resident:
                    yield aug.batch(b, device)
        ds = cpu_ds if mode == "cpu" else raw_ds
        loader = make_loader(ds, batch_size=batch, shuffle=True, settings=settings,
                             drop_last=True)
        while True:
            for b in loader:
                yield b if mode == "cpu" else aug.batch(b, device)

    modes = {"augment on CPU (per item)": batches("cpu"),
             "augment on device (per batch)": batches("device"),
             "augment on device, data resident": batches("resident")}
    times: dict[str, list[float]] = {k: [] for k in modes}
    data_s: dict[str, float] = dict.fromkeys(modes, 0.0)  # getting + augmenting batches

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for it in modes.values():
        step(next(it))  # warm-up
    for _ in range(args.rounds_train):
        for mode, it in modes.items():
            sync()
            t = time.perf_counter()
            for _ in range(args.train_steps):
                t_data = time.perf_counter()
                b = next(it)
                sync()
                data_s[mode] += time.perf_counter() - t_data
                step(b)
            sync()
            times[mode].append(time.perf_counter() - t)
    first = next(iter(modes))
    out: dict = {"device": str(device), "model": args.train_model,
                 "model_options": json.loads(args.train_model_options), "crop_size": crop,
                 "batch_size": batch, "steps_per_round": args.train_steps,
                 "rounds": args.rounds_train, "loader": settings.describe(),
                 "torch_threads": torch.get_num_threads()}
    for mode, ts in times.items():
        ratio = sorted(a / b for a, b in zip(times[first], ts, strict=True))[len(ts) // 2]
        out[mode] = {"images_per_s": round(batch * args.train_steps / float(np.median(ts)), 2),
                     "vs_cpu": round(float(ratio), 2),
                     "data_ms_per_batch": round(1000 * data_s[mode] / (len(ts)
                                                                     * args.train_steps), 1),
                     "data_share_of_step_time": round(data_s[mode] / sum(ts), 3)}
    print(name, "train", json.dumps(out), flush=True)
    return out


def _dense_instances(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference: one comparison per object and pixel, boxes from every mask."""
    ids = np.unique(label)
    ids = ids[ids > 0]
    masks = (label[None] == ids[:, None, None]).astype(np.uint8)
    boxes = np.zeros((len(ids), 4), np.float32)
    for k, m in enumerate(masks):
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        boxes[k] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return masks, boxes


def _dense_finish(inst: dict) -> dict:
    """The reference: keep non-empty masks, boxes by ``torchvision.ops.masks_to_boxes``."""
    from torchvision.ops import masks_to_boxes

    masks = inst["masks"].as_subclass(torch.Tensor).to(torch.uint8)
    keep = masks.flatten(1).bool().any(dim=1)
    masks = masks[keep]
    boxes = masks_to_boxes(masks) if len(masks) else torch.zeros((0, 4))
    boxes[:, 2:] += 1
    return {"masks": masks, "boxes": boxes, "ids": inst["ids"][keep]}


def instance_rates(index, name: str, args) -> dict:
    """ms per image of the Instance item's steps: segwise vs the dense reference."""
    import segwise.data.datasets as datasets_module
    from segwise.data.formats import read_mask_raw
    from segwise.data.instances import instances_from_label

    samples = index.train[: args.images]
    labels = [read_mask_raw(s.mask_path).array for s in samples]
    captured: list[dict] = []
    finish = datasets_module.clean_instances
    crop = CROPS.get(name, (256, 256))
    items = {"full image": None, f"train crop {crop[0]}x{crop[1]}": train_transforms(
        index.info, crop_size=crop)}
    whole: dict[str, float] = {}
    datasets_module.clean_instances = lambda inst: (captured.append(inst), finish(inst))[1]
    try:
        for label, tf in items.items():
            ds = SegmentationDataset(samples, index.info, instances=True, transform=tf)
            torch.manual_seed(0)
            t = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            whole[label] = 1e3 * (time.perf_counter() - t) / len(ds)
    finally:
        datasets_module.clean_instances = finish
    pairs = {"instances_from_label": (labels, lambda x: instances_from_label(x, None),
                                      _dense_instances),
             "finish (boxes, drop emptied)": (captured, finish, _dense_finish)}
    out: dict = {"images": len(samples), "item_ms_segwise": whole}
    for step, (inputs, ours, ref) in pairs.items():
        times: dict[str, list[float]] = {"segwise": [], "dense reference": []}
        for _ in range(args.rounds):
            for key, fn in (("segwise", ours), ("dense reference", ref)):
                t = time.perf_counter()
                for x in inputs:
                    fn(x)
                times[key].append(1e3 * (time.perf_counter() - t) / len(inputs))
        med = {k: float(np.median(v)) for k, v in times.items()}
        out[step] = {"ms_per_image_median": med, "rounds": times,
                     "speedup": med["dense reference"] / med["segwise"]}
    return out


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--images", type=int, default=48, help="images timed per measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--datasets", nargs="+", default=["camvid", "dsb2018"])
    parser.add_argument("--sections", nargs="+", default=["augment", "loader", "train"],
                        choices=["augment", "loader", "train", "instances"])
    parser.add_argument("--aug-images", type=int, default=24,
                        help="decoded images per round of the augment section")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (augment)")
    g = parser.add_argument_group("train section: augmentation on CPU vs device in training")
    g.add_argument("--device", default="cpu", help="cpu, or cuda to run the modes on a GPU")
    g.add_argument("--train-model", default="unet_textbook")
    g.add_argument("--train-model-options", default='{"base_width": 8, "depth": 3}',
                   help="JSON of model options (the small model of the tests)")
    g.add_argument("--train-crop", type=int, default=256)
    g.add_argument("--train-batch", type=int, default=8)
    g.add_argument("--train-images", type=int, default=32, help="images decoded (cached)")
    g.add_argument("--train-steps", type=int, default=4, help="steps per mode and round")
    g.add_argument("--rounds-train", type=int, default=3)
    g.add_argument("--train-workers", type=int, default=None,
                   help="loader workers (default: loader_settings for the device)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "data.json")
    args = parser.parse_args()
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "opencv": _version("cv2"), "albumentations": _version("albumentations"),
                    "load_average": list(os.getloadavg())},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "datasets": {},
    }
    for name in args.datasets:
        root = args.data_root / name
        if not root.is_dir():
            print(f"skip {name}: {root} not found")
            continue
        entry = results["datasets"][name] = {}
        if "augment" in args.sections:
            entry["augment_per_core_images_per_s"] = augment_rates(discover_dataset(root), name,
                                                                   args)
        if "train" in args.sections:
            entry["train_images_per_s"] = train_rates(discover_dataset(root), name, args)
        if "loader" in args.sections:
            entry.update(bench(root, name, args))
        if "instances" in args.sections:
            index = discover_dataset(root)
            if index.info.mask_kind.value in ("instance", "coco"):
                entry["instance_item"] = instance_rates(index, name, args)
        print(name, json.dumps(entry, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
