"""The metrics package: public names and no heavy imports."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

import segwise.metrics as metrics

SEMANTIC_MODULES = (
    "__init__.py",
    "_checks.py",
    "_distributed.py",
    "confusion.py",
    "functional.py",
    "per_image.py",
    "scores.py",
    "surface.py",
    "boundary.py",
    "options.py",
)
PUBLIC = {
    "Average",
    "BoundaryMetrics",
    "BoundaryScores",
    "average_surface_distance",
    "hausdorff_distance",
    "normalized_surface_dice",
    "surface_statistics",
    "ConfusionMatrix",
    "DistanceMetric",
    "ImageReduction",
    "MetricEmptyRule",
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


def _result(metric):
    return json.dumps(metric.compute().to_dict(), allow_nan=False, sort_keys=True)


STREAMING = {
    "ConfusionMatrix": lambda: metrics.ConfusionMatrix(3, ignore_index=255),
    "PerImageDice": lambda: metrics.PerImageDice(3, ignore_index=255),
}


@pytest.mark.parametrize("name", sorted(STREAMING))
def test_streaming_metric_contract(name):
    """The metric seam of docs/contracts.md, swept over every streaming semantic metric."""
    make = STREAMING[name]
    g = torch.Generator().manual_seed(1)
    pred = torch.randint(0, 3, (4, 5, 6), generator=g)
    target = torch.randint(0, 3, (4, 5, 6), generator=g)
    target[:, 0, 0] = 255
    whole = make()
    whole.update(pred, target)
    a, b = make(), make()
    a.update(pred[:2], target[:2])
    b.update(pred[2:], target[2:])
    assert a.merge(b) is a
    assert _result(a) == _result(whole)  # merge == one pass over the concatenation
    a.all_reduce()  # no process group: no-op
    assert _result(a) == _result(whole)
    restored = make()
    restored.load_state_dict(a.state_dict())
    assert _result(restored) == _result(whole)
    fresh = make()
    a.reset()
    assert _result(a) == _result(fresh)
    with pytest.raises(ValueError, match="pred has dtype torch.float32"):
        a.update(pred.float(), target)
