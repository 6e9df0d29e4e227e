"""Issue 25, item 5: the distance metrics' ``distance_metric`` option (euclidean, chessboard,
taxicab), MONAI's ``not_nans`` counts and its reductions (sums over images), by hand and
against MONAI and scipy's ``distance_transform_cdt``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from segwise.metrics import (
    BoundaryMetrics,
    average_surface_distance,
    hausdorff_distance,
    normalized_surface_dice,
)
from segwise.metrics.boundary import ImageReduction, reduce_values
from segwise.metrics.surface import DistanceMetric

mm = pytest.importorskip("monai.metrics")


def _six_by_six() -> tuple[torch.Tensor, torch.Tensor]:
    """Target: a 2x2 square at rows 1-2, cols 1-2; prediction: the same square at rows 3-4,
    cols 3-4 (two pixels down and two right). Both boundaries are all 4 pixels of the square.
    """
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, 1:3, 1:3] = 1
    pred = torch.zeros(1, 6, 6, dtype=torch.long)
    pred[0, 3:5, 3:5] = 1
    return pred, target


# The prediction's pixels (3,3), (3,4), (4,3), (4,4) are nearest to the target's (2,2), at
# offsets (1,1), (1,2), (2,1), (2,2); by symmetry D_gp is the same multiset:
#   euclidean  sqrt2, sqrt5, sqrt5, sqrt8
#   chessboard 1, 2, 2, 2            (max |d_i|)
#   taxicab    2, 3, 3, 4            (sum |d_i|)
# HD = the largest; HD95 = the value at position 0.95 * 3 = 2.85 of the sorted four, linearly
# interpolated; ASSD = the mean; NSD at tolerance 2 = the share <= 2.
S2, S5, S8 = math.sqrt(2), math.sqrt(5), math.sqrt(8)
BY_HAND = {
    "euclidean": {"hd": S8, "hd95": S5 + 0.85 * (S8 - S5), "assd": (S2 + 2 * S5 + S8) / 4,
                  "nsd2": 0.25},
    "chessboard": {"hd": 2.0, "hd95": 2.0, "assd": 7 / 4, "nsd2": 1.0},
    "taxicab": {"hd": 4.0, "hd95": 3.85, "assd": 3.0, "nsd2": 0.25},
}


def _ours(metric: str, pred, target, **kw) -> dict[str, float]:
    common = dict(num_classes=2, distance_metric=metric, **kw)
    return {
        "hd": float(hausdorff_distance(pred, target, percentile=None, **common)[0, 1]),
        "hd95": float(hausdorff_distance(pred, target, percentile=95, **common)[0, 1]),
        "assd": float(average_surface_distance(pred, target, **common)[0, 1]),
        "nsd2": float(normalized_surface_dice(pred, target, tolerance=2.0, **common)[0, 1]),
    }


def _one_hot(x: torch.Tensor, c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(x, c).permute(0, 3, 1, 2).float()


def _monai(metric: str, pred, target, c: int, tol: float = 2.0) -> dict[str, torch.Tensor]:
    p, t = _one_hot(pred, c), _one_hot(target, c)
    kw = dict(include_background=True, distance_metric=metric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty classes
        return {
            "hd": mm.compute_hausdorff_distance(p, t, **kw),
            "hd95": mm.compute_hausdorff_distance(p, t, percentile=95, **kw),
            "assd": mm.compute_average_surface_distance(p, t, symmetric=True, **kw),
            "nsd2": mm.compute_surface_dice(p, t, class_thresholds=[tol] * c, **kw),
        }


@pytest.mark.parametrize("metric", ["euclidean", "chessboard", "taxicab"])
def test_hausdorff_assd_nsd_by_hand_on_a_6x6_case(metric):
    pred, target = _six_by_six()
    ours = _ours(metric, pred, target)
    for name, value in BY_HAND[metric].items():
        assert ours[name] == pytest.approx(value, rel=1e-12), name
    theirs = _monai(metric, pred, target, 2)
    for name, value in BY_HAND[metric].items():
        assert float(theirs[name][0, 1]) == pytest.approx(value, rel=1e-6), name


@pytest.mark.parametrize("metric", ["chessboard", "taxicab"])
def test_the_distances_are_scipys_distance_transform_cdt(metric):
    from scipy.ndimage import distance_transform_cdt

    pred, target = _six_by_six()
    # every target pixel is on its boundary: the distance of each prediction pixel to the
    # target is the transform of "not target" at that pixel
    field = distance_transform_cdt(target[0].numpy() == 0, metric=metric)
    d_pg = field[pred[0].numpy() == 1]
    ours = hausdorff_distance(pred, target, num_classes=2, percentile=None, directed=True,
                              distance_metric=metric)
    assert float(ours[0, 1]) == float(d_pg.max())
    assd = average_surface_distance(pred, target, num_classes=2, directed=True,
                                    distance_metric=metric)
    assert float(assd[0, 1]) == pytest.approx(float(d_pg.mean()))


def _blobs(n: int, c: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, c, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear").argmax(1)


@pytest.mark.parametrize("metric", ["chessboard", "taxicab"])
def test_against_monai_on_random_label_maps(metric):
    pred, target = _blobs(2, 3, 28, 7), _blobs(2, 3, 28, 8)
    theirs = _monai(metric, pred, target, 3, tol=1.5)
    common = dict(num_classes=3, distance_metric=metric)
    ours = {
        "hd": hausdorff_distance(pred, target, percentile=None, **common),
        "hd95": hausdorff_distance(pred, target, **common),
        "assd": average_surface_distance(pred, target, **common),
        "nsd2": normalized_surface_dice(pred, target, tolerance=1.5, **common),
    }
    for name in ours:
        torch.testing.assert_close(ours[name].float(), theirs[name], rtol=1e-5, atol=1e-5)


def test_spacing_scales_each_axis_of_every_distance():
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, 1, 1] = 1
    pred = torch.zeros(1, 6, 6, dtype=torch.long)
    pred[0, 2, 3] = 1  # offset (1, 2) pixels = (2.0, 1.0) in units of spacing (2.0, 0.5)
    got = {m: float(hausdorff_distance(pred, target, num_classes=2, percentile=None,
                                       spacing=(2.0, 0.5), distance_metric=m)[0, 1])
           for m in ("euclidean", "chessboard", "taxicab")}
    assert got == pytest.approx({"euclidean": math.sqrt(5), "chessboard": 2.0, "taxicab": 3.0})


def test_a_misspelt_distance_metric_is_named_with_the_choices():
    pred, target = _six_by_six()
    with pytest.raises(ValueError, match="distance_metric='manhattan'.*'taxicab'"):
        hausdorff_distance(pred, target, num_classes=2, distance_metric="manhattan")
    with pytest.raises(ValueError, match="chessboard"):
        BoundaryMetrics(2, distance_metric="cityblock")
    assert DistanceMetric("taxicab").p == 1.0


def test_streaming_metrics_use_the_option_and_refuse_to_merge_across_it():
    pred, target = _six_by_six()
    chess = BoundaryMetrics(2, distance_metric="chessboard")
    chess.update(pred, target)
    scores = chess.compute()
    assert float(scores.hd[0, 1]) == 2.0 and scores.distance_metric is DistanceMetric.CHESSBOARD
    assert scores.to_dict()["distance_metric"] == "chessboard"
    with pytest.raises(ValueError, match="distance_metric"):
        chess.merge(BoundaryMetrics(2))
    restored = BoundaryMetrics(2, distance_metric="chessboard")
    restored.load_state_dict(chess.state_dict())
    assert float(restored.compute().hd[0, 1]) == 2.0
    old = chess.state_dict()
    del old["distance_metric"]  # a state saved before the option existed: euclidean
    BoundaryMetrics(2).load_state_dict(old)


def _with_nans() -> torch.Tensor:
    """(4 images, 3 classes) of distances, NaN where a class was absent from both."""
    nan = math.nan
    return torch.tensor([[1.0, nan, 3.0], [nan, nan, nan], [2.0, 5.0, nan], [4.0, 1.0, 0.5]],
                        dtype=torch.float64)


@pytest.mark.parametrize("reduction", list(ImageReduction))
def test_reductions_and_not_nans_are_monais(reduction):
    from monai.metrics.utils import do_metric_reduction

    values = _with_nans()
    ours, count = reduce_values(values, reduction)
    theirs, their_count = do_metric_reduction(values.clone().float(), reduction.value.replace(
        "images", "batch").replace("classes", "channel"))
    torch.testing.assert_close(count.double(), their_count.double())
    if reduction is ImageReduction.NONE:
        torch.testing.assert_close(ours.float(), theirs, equal_nan=True)
        return
    ours, theirs, defined = ours.reshape(-1), theirs.reshape(-1).float(), count.reshape(-1) > 0
    torch.testing.assert_close(ours[defined].float(), theirs[defined])
    assert ours[~defined].isnan().all() and (theirs[~defined] == 0).all()  # MONAI writes 0


def test_sums_over_images_and_not_nans_by_hand():
    values = _with_nans()
    total, count = reduce_values(values, "sum_images")
    assert total.tolist() == [7.0, 6.0, 3.5] and count.tolist() == [3, 2, 2]
    per_image, n = reduce_values(values, "mean_classes")
    assert n.tolist() == [2, 0, 2, 3] and math.isnan(per_image[1])
    assert per_image[[0, 2, 3]].tolist() == pytest.approx([2.0, 3.5, 5.5 / 3])
    value, images = reduce_values(values, "mean")  # per image first, then over 3 images
    assert int(images) == 3 and float(value) == pytest.approx((2.0 + 3.5 + 5.5 / 3) / 3)
    with pytest.raises(ValueError, match="reduction='total'"):
        reduce_values(values, "total")


def test_boundary_scores_count_the_images_behind_each_class_mean():
    pred, target = _six_by_six()
    empty = torch.zeros_like(pred)
    bm = BoundaryMetrics(2, distance_metric="taxicab")
    bm.update(torch.cat([pred, empty, pred]), torch.cat([target, empty, target]))
    scores = bm.compute()
    assert scores.not_nans["hd"].tolist() == [3, 2]  # class 1 absent from image 2: NaN
    assert scores.to_dict()["not_nans"]["hd95"] == [3, 2]
    total, n = scores.reduce("hd", "sum_images")
    assert float(total[1]) == 8.0 and int(n[1]) == 2
    np.testing.assert_allclose(scores.reduce("assd", "mean_images")[0].numpy(),
                               scores.per_class["assd"].numpy())
    with pytest.raises(ValueError, match="name='hd96'"):
        scores.reduce("hd96")
