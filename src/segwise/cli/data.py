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
"""

_MAX_ROWS = 40


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


def run(args: argparse.Namespace) -> int:
    from segwise.data.inspect import inspect_dataset
    from segwise.notices import printed

    try:
        with printed(), _warnings_as_notices():
            report = inspect_dataset(
                args.root, mask_kind=args.mask_kind, ignore_index=args.ignore_index,
                num_classes=args.num_classes, val_fraction=args.val_fraction, seed=args.seed,
                decode_images=not args.headers_only, nonfinite=args.nonfinite)
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
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _render(report)
    return 1 if report.errors else 0


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
