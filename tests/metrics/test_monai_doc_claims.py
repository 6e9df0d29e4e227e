"""Issue 25: what ``docs/metrics.md`` §7 and ``docs/dice.md`` §7 say about MONAI, as value
tests (the two statements the issue found wrong, with their corrected forms)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from segwise.losses import FocalLoss
from segwise.metrics import average_surface_distance, hausdorff_distance, normalized_surface_dice

monai_metrics = pytest.importorskip("monai.metrics")
monai_losses = pytest.importorskip("monai.losses")


def test_one_empty_mask_gives_inf_and_monais_percentile_hausdorff_gives_nan():
    """docs/metrics.md §7: a 2x2 prediction on an empty 6x6 target."""
    pred = torch.zeros(1, 6, 6, dtype=torch.long)
    pred[0, 1:3, 1:3] = 1
    target = torch.zeros_like(pred)
    kw = dict(num_classes=2)
    ours = {"hd": hausdorff_distance(pred, target, percentile=None, **kw)[0, 1],
            "hd95": hausdorff_distance(pred, target, percentile=95, **kw)[0, 1],
            "assd": average_surface_distance(pred, target, **kw)[0, 1],
            "nsd": normalized_surface_dice(pred, target, **kw)[0, 1]}
    p = torch.nn.functional.one_hot(pred, 2).permute(0, 3, 1, 2).float()
    t = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = {
            "hd": monai_metrics.compute_hausdorff_distance(p, t, include_background=True),
            "hd95": monai_metrics.compute_hausdorff_distance(p, t, include_background=True,
                                                             percentile=95),
            "assd": monai_metrics.compute_average_surface_distance(p, t, include_background=True,
                                                                   symmetric=True),
            "nsd": monai_metrics.compute_surface_dice(p, t, class_thresholds=[1.0, 1.0],
                                                      include_background=True),
        }
    theirs = {k: float(v[0, 1]) for k, v in theirs.items()}
    assert [float(ours[k]) for k in ("hd", "hd95", "assd", "nsd")] == [math.inf] * 3 + [0.0]
    assert theirs["hd"] == math.inf and theirs["assd"] == math.inf and theirs["nsd"] == 0.0
    assert math.isnan(theirs["hd95"])  # the percentile of infinite distances: NaN, not inf


def test_monais_focal_mean_is_ours_times_the_mean_target_weight_over_c():
    """docs/dice.md §7, focal row: zero logits, C = 2, every pixel of class 1."""
    logits = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    target = torch.ones(1, 4, 4, dtype=torch.long)
    for weights, ours_value, theirs_value in [(None, 0.173287, 0.086643),
                                              ((1.0, 3.0), 0.173287, 0.259930)]:
        ours = FocalLoss(task="multiclass", gamma=2.0, class_weights=weights)(logits, target)
        theirs = monai_losses.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0,
                                        weight=weights)(logits, target[:, None])
        assert float(ours) == pytest.approx(ours_value, abs=1e-6)
        assert float(theirs) == pytest.approx(theirs_value, abs=1e-6)
        mean_weight = 1.0 if weights is None else weights[1]  # of the target pixels' class
        assert float(theirs) == pytest.approx(float(ours) * mean_weight / 2, rel=1e-6)
