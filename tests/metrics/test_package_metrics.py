"""The metrics package: public names and no heavy imports."""

from __future__ import annotations

import ast
from pathlib import Path

import segwise.metrics as metrics

SEMANTIC_MODULES = (
    "__init__.py",
    "_checks.py",
    "_distributed.py",
    "confusion.py",
    "functional.py",
    "per_image.py",
    "scores.py",
)
PUBLIC = {
    "ConfusionMatrix",
    "EmptyRule",
    "PerImageDice",
    "PerImageScores",
    "SegmentationScores",
    "batch_confusion_matrix",
    "confusion_matrix",
    "dice_score",
    "iou_score",
    "labels_from_logits",
    "scores_from_confusion",
}


def test_public_names():
    assert set(metrics.__all__) == PUBLIC
    assert all(hasattr(metrics, name) for name in PUBLIC)


def test_semantic_modules_import_only_torch_stdlib_and_segwise():
    """Static check (no subprocess): module-level imports of the semantic metric modules."""
    allowed = {"__future__", "collections", "dataclasses", "enum", "math", "typing", "torch"}
    folder = Path(metrics.__file__).parent
    for name in SEMANTIC_MODULES:
        tree = ast.parse((folder / name).read_text())
        for node in tree.body:  # module level only: lazy imports inside functions are fine
            if isinstance(node, ast.Import):
                roots = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [node.module or ""]
            else:
                continue
            for root in roots:
                ok = root.split(".")[0] in allowed or (
                    root.startswith("segwise") and root != "segwise.metrics.instance"
                )
                assert ok, f"{name} imports {root} at module level"
