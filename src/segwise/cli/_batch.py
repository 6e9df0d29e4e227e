"""What the batch verbs share: their inputs, outputs and progress lines (``predict`` and
``evaluate``, semantic and instance alike; kept apart so those modules do not import each
other)."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

from segwise.data.formats import IMAGE_SUFFIXES

__all__ = ["expand_inputs", "postprocess_labels", "predict_all", "progress_reporter",
           "refuse_clashes", "semantic_record"]


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders and globs -> an ordered list of image files without repeats."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"the pattern {item!r} matches no file")
            found.extend(p for p in matches if p.is_file())
        else:
            raise FileNotFoundError(f"input {item} does not exist")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise FileNotFoundError(
            f"no images found in {inputs} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    stems: dict[str, Path] = {}
    for p in unique:
        if p.stem in stems:
            raise ValueError(
                f"two inputs share the name {p.stem!r} ({stems[p.stem]} and {p}); their outputs "
                "would collide: predict them into different --out folders"
            )
        stems[p.stem] = p
    return unique


def refuse_clashes(paths: list[Path]) -> None:
    """Raise ``FileExistsError`` naming the outputs that already exist (``--overwrite`` off)."""
    clashes = [p for p in paths if p.exists()]
    if clashes:
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise FileExistsError(
            f"outputs already exist: {', '.join(map(str, clashes[:3]))}{more}; "
            "pass --overwrite to replace them, or choose another --out"
        )


def predict_all(images: list[Path], out: Path, predict_one: Any, *, noun: str = "images"
                ) -> int:
    """Run ``predict_one(path) -> result dict`` on every image, write summary.json, report.

    A failing image does not stop the batch; the exit code is 1 when any image failed.
    ``noun`` names the inputs in the last line (``"volumes"`` for 3D runs).
    """
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for path in images:
        try:
            results.append(predict_one(path))
        except Exception as err:  # one bad file must not stop the batch
            results.append({"input": str(path), "ok": False, "error": f"{err}"})
            print(f"failed: {path}: {err}")
    failures = [r for r in results if not r["ok"]]
    (out / "summary.json").write_text(
        json.dumps(
            {"inputs": len(results), "failed": len(failures), "results": results}, indent=2
        )
    )
    print(f"{len(results) - len(failures)}/{len(results)} {noun} written to {out}")
    if failures:
        print(f"{len(failures)} failed (see {out / 'summary.json'}):")
        for f in failures:
            print(f"  {f['input']}: {f['error']}")
        return 1
    return 0


def progress_reporter():
    """Progress lines on stderr (stdout stays clean for --json)."""
    import sys

    from segwise.engine.progress import progress_line

    def report(done: int, total: int, seconds: float) -> None:
        print(progress_line("evaluated", done, total, seconds), file=sys.stderr, flush=True)

    return report


def postprocess_labels(labels: Any, args: Any, *, spatial_dims: int = 2) -> Any:
    """``--min-size``, ``--fill-holes`` then ``--largest-component`` on a class-index map
    (``(H, W)``, or ``(D, H, W)`` with ``spatial_dims=3``), as ``segwise predict`` applies them."""
    from segwise.inferers.postprocess import (
        fill_holes,
        keep_largest_component,
        remove_small_objects,
    )

    if args.min_size > 0:
        labels = remove_small_objects(labels, min_size=args.min_size, spatial_dims=spatial_dims)
    if args.fill_holes:
        labels = fill_holes(labels, spatial_dims=spatial_dims)
    if args.largest_component:
        labels = keep_largest_component(labels, spatial_dims=spatial_dims)
    return labels


def semantic_record(path: Path, written: list[Path], labels: Any, names: Any,
                    **extra: Any) -> dict[str, Any]:
    """summary.json's entry for one predicted class-index map: input, outputs, size, ``extra``
    (e.g. a volume's spacing and seconds), the classes present."""
    import numpy as np

    return {
        "input": str(path),
        "ok": True,
        "outputs": [str(p) for p in written],
        "size": list(labels.shape),
        **extra,
        "classes_present": [names[int(c)] for c in np.unique(labels)],
    }
