"""``segwise data inspect DIR [--json]``: check a dataset before training on it."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Iterator

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

NAME = "data"
HELP = "inspect a dataset: counts, sizes, mask kind, classes, problems"
DESCRIPTION = """\
Check a dataset folder (or a pairs .csv) the way training will read it.

  segwise data inspect DIR            a report in the terminal
  segwise data inspect DIR --json     the same report as JSON on stdout

Lists counts, sizes, channels, the images' colour spaces with the rule applied to each (CMYK
and YCCK converted to RGB, Lab refused, ...), the detected mask kind, the classes with their
pixel frequencies, and every problem with its file: images without masks and masks without
images, size mismatches, unreadable files, NaN / inf pixels, unexpected label values, heavy
class imbalance. Notices are printed once each on stderr, without Python source lines.
Exit code 0 when training can start, 1 when an error would stop it (with --json, a
layout that cannot be read at all is reported as JSON too: {"fatal": MESSAGE, ...}).
Supported layouts and mask kinds: docs/data.md.

Volumes (imagesTr/ + labelsTr/ or images/ + labels/ of NIfTI, NRRD, MetaImage or DICOM):
shapes and spacings (median and range), orientations, dtypes, anisotropy, the intensity rule
and why, voxels per class, the patch and batch `segwise train` would pick, and one row per
volume (all in --json; the first 10 and every one with a problem in the terminal).
See docs/volumes.md, "Inspecting volumes".
"""

_MAX_ROWS = 40
_VOLUME_ROWS = 10  # volume rows always shown in the terminal (rows with problems come too)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_action", metavar="ACTION", required=True)
    p = sub.add_parser("inspect", help="report on a dataset",
                       description="Report on a dataset: counts, classes, problems.")
    p.add_argument("root", metavar="DIR", help="dataset folder or pairs .csv/.txt file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--mask-kind", default="auto",
                   help="auto, binary, index, palette, color, soft, instance, coco")
    p.add_argument("--ignore-index", type=int, default=None, help="label value to ignore")
    p.add_argument("--num-classes", type=int, default=None, help="classes incl. background")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="val share when the data has no split (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of that split (default 0)")
    p.add_argument("--headers-only", action="store_true",
                   help="read image headers only (faster; misses truncated images)")
    p.add_argument("--nonfinite", default="refuse", choices=("refuse", "ignore"),
                   help="NaN / inf pixels in float images: refuse (an error, the default) or "
                        "ignore (read as the mean, their mask pixels left out)")
    p.add_argument("--normalization", default="auto", choices=("auto", "zscore", "ct"),
                   help="volumes: the intensity rule to report, as for segwise train (auto: "
                        "ct when dataset.json names CT, else zscore)")


def run(args: argparse.Namespace) -> int:
    from segwise.data.inspect import inspect_dataset
    from segwise.notices import printed

    try:
        with printed(), _warnings_as_notices():
            report = inspect_dataset(
                args.root, mask_kind=args.mask_kind, ignore_index=args.ignore_index,
                num_classes=args.num_classes, val_fraction=args.val_fraction, seed=args.seed,
                decode_images=not args.headers_only, nonfinite=args.nonfinite,
                normalization=args.normalization)
    except (ValueError, FileNotFoundError) as err:
        if not args.json:
            raise
        # a layout that cannot be read at all: still JSON on stdout, for scripts
        json.dump({"root": str(args.root), "fatal": str(err),
                   "problem_counts": {"error": 1, "warning": 0, "info": 0},
                   "problems": [{"severity": "error", "code": "fatal", "file": str(args.root),
                                 "message": str(err)}]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        print(f"segwise data: error: {err}", file=sys.stderr)
        return 1
    out = report.to_dict()
    if report.is_volumes:
        out["summary"]["training"] = _training_defaults(report.index.info)
    out["summary"]["rare_classes"] = _rare_classes(report.index.info)
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif report.is_volumes:
        _render_volumes(report, out)
    else:
        _render(report)
    return 1 if report.errors else 0


def _rare_classes(info) -> str | None:
    """The line naming the classes under 1 % of the pixels and the weight setting for them."""
    from segwise.data.class_weights import rare_class_note

    return rare_class_note(info.class_pixel_counts, info.labels.names)


def _training_defaults(info) -> dict:
    """The patch and batch ``segwise train`` derives for these volumes when none is given
    (:func:`segwise.engine.setup.derive_data_defaults`): the batch per device kind."""
    import torch

    from segwise.engine.config import DataConfig
    from segwise.engine.setup import derive_data_defaults

    picked = {kind: derive_data_defaults(DataConfig(), info, torch.device(kind))
              for kind in ("cpu", "cuda")}
    return {"patch_size": list(picked["cpu"].patch_size),
            "batch_size": {kind: cfg.batch_size for kind, cfg in picked.items()}}


@contextlib.contextmanager
def _warnings_as_notices() -> Iterator[None]:
    """Python warnings raised by the libraries that read the files (Pillow, tifffile, ...)
    go through the one notice channel (:func:`segwise.notices.notify`): printed once each as
    ``segwise warning: ...``, without the source line Python's default printer adds."""
    from segwise.notices import Level, notify

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                text = f"{w.category.__name__}: {w.message}"
                if text not in seen:
                    seen.add(text)
                    notify(Level.WARNING, text)


def _render(report) -> None:
    from rich.table import Table

    from segwise.cli._common import console as make_console

    console = make_console()
    s = report.summary()
    console.print(f"[bold]{s['root']}[/bold]  layout {s['layout']}, split {s['split']}")
    console.print(
        f"train {s['train']}  val {s['val']}  unpaired files {s['unpaired']}  |  size (H, W) "
        f"min {tuple(s['size_min'])} median {tuple(s['size_median'])} max {tuple(s['size_max'])}"
        f"  |  channels {s['channels']}  dtypes {s['dtypes']}")
    for space, c in s["color_spaces"].items():
        console.print(f"colour space {space} ({c['images']} images): {c['rule']}")
    console.print("values: " + ", ".join(f"{d} {rule}" for d, rule in s["value_scale"].items())
                  + ", then (x - mean) / std per channel")
    console.print(f"masks: {s['mask_kind']}  task: {s['task']}  ignore_index: "
                  f"{s['ignore_index']} ({s['ignored_pixels']:,} pixels)  classes from: "
                  f"{s['classes_source']}")
    if "instances" in s:
        i = s["instances"]
        console.print(f"instances: {i['total']} (per image min {i['min']}, median "
                      f"{i['median']}, max {i['max']})"
                      + (f"  |  crowd regions (iscrowd): {i['crowd']} in "
                         f"{i['images_with_crowd']} images, ignored in training, scored as "
                         "crowd" if i.get("crowd") else ""))
    table = Table(title="classes")
    for col in ("#", "name", "colour", "pixels", "share"):
        table.add_column(col, justify="right" if col in ("#", "pixels", "share") else "left")
    for c in s["classes"]:
        r, g, b = c["color"]
        table.add_row(str(c["index"]), c["name"], f"[rgb({r},{g},{b})]██[/] {r},{g},{b}",
                      f"{c['pixels']:,}", f"{100 * c['fraction']:.2f}%")
    console.print(table)
    if note := _rare_classes(report.index.info):
        console.print(note)
    _render_problems(console, report)


def _render_volumes(report, out: dict) -> None:
    from rich.table import Table

    from segwise.cli._common import console as make_console

    console = make_console()
    s = out["summary"]
    console.print(f"[bold]{s['root']}[/bold]  layout {s['layout']} (3D), split {s['split']}")
    console.print(f"train {s['train']}  val {s['val']}  test {s['test']}  unpaired files "
                  f"{s['unpaired']}  |  volumes read {s['volumes_read']}  channels "
                  f"{s['channels']}  dtypes {s['dtypes']}")
    console.print(f"shape (voxels) min {tuple(s['shape_min'])} median "
                  f"{tuple(s['shape_median'])} max {tuple(s['shape_max'])}")
    console.print(f"spacing (mm) min {tuple(s['spacing_min'])} median "
                  f"{tuple(s['spacing_median'])} max {tuple(s['spacing_max'])}")
    a = s["anisotropy"]
    console.print("orientations " + ", ".join(f"{k}: {v}" for k, v in s["orientations"].items())
                  + f"  |  anisotropy max {a['max']:g}, {a['over_threshold']} volumes over "
                  f"{a['threshold']:g}")
    n = s["normalization"]
    console.print(f"intensities: {n['rule']}, {n['applies']}"
                  + (f" (clip {tuple(n['clip'])})" if n["clip"] else "") + f"; {n['reason']}")
    t = s["training"]
    console.print(f"segwise train would pick: patch {tuple(t['patch_size'])}, batch "
                  + ", ".join(f"{v} on {k}" for k, v in t["batch_size"].items()))
    console.print(f"classes from: {s['classes_source']}  task: {s['task']}  ignore_index: "
                  f"{s['ignore_index']}  foreground {100 * s['foreground_fraction']:.2f}% of "
                  "the voxels")
    table = Table(title="classes")
    for col in ("#", "name", "voxels", "share"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for c in s["classes"]:
        table.add_row(str(c["index"]), c["name"], f"{c['voxels']:,}",
                      f"{100 * c['fraction']:.2f}%")
    console.print(table)
    if s["rare_classes"]:
        console.print(s["rare_classes"])
    rows = out["volumes"]
    shown = [r for i, r in enumerate(rows) if i < _VOLUME_ROWS or r["problems"]
             or r["spacing_differs"] or (r["anisotropy"] or 0) > a["threshold"]][:_MAX_ROWS]
    vtable = Table(title=f"volumes ({len(shown)} of {len(rows)} shown; --json lists all)")
    for col in ("id", "split", "shape", "spacing (mm)", "orient.", "dtype", "labels",
                "aniso.", "problems"):
        vtable.add_column(col, overflow="fold")

    def cell(value) -> str:
        return "-" if value is None else " x ".join(f"{v:g}" for v in value)

    for r in shown:
        vtable.add_row(r["id"], r["split"], cell(r["shape"]), cell(r["spacing"]),
                       r["orientation"] or "-", r["dtype"] or "-",
                       "-" if r["label_values"] is None else
                       ", ".join(str(v) for v in r["label_values"]),
                       "-" if r["anisotropy"] is None else f"{r['anisotropy']:g}",
                       ", ".join(r["problems"] + (["spacing_differs"] if r["spacing_differs"]
                                                  else [])))
    console.print(vtable)
    _render_problems(console, report)


def _render_problems(console, report) -> None:
    from rich.table import Table

    counts = report.to_dict()["problem_counts"]
    if not report.problems:
        console.print("[green]no problems found[/green]")
        return
    ptable = Table(title=f"problems: {counts['error']} errors, {counts['warning']} warnings, "
                         f"{counts['info']} notices")
    for col in ("severity", "file", "message"):
        ptable.add_column(col, overflow="fold")
    style = {"error": "red", "warning": "yellow", "info": "cyan"}
    for p in report.problems[:_MAX_ROWS]:
        sev = p.severity.value
        ptable.add_row(f"[{style[sev]}]{sev}[/]", p.file, p.message)
    console.print(ptable)
    if len(report.problems) > _MAX_ROWS:
        console.print(f"... and {len(report.problems) - _MAX_ROWS} more (use --json for all)")
    if report.errors:
        console.print("[red]training would stop on the errors above[/red]")
