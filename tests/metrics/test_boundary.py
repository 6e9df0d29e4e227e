"""Boundary metrics: hand-counted distances, empty rules, spacing, 3D, ignore, streaming, MONAI."""

from __future__ import annotations

import math

import pytest
import torch

from segwise.metrics import (
    BoundaryMetrics,
    average_surface_distance,
    hausdorff_distance,
    normalized_surface_dice,
    surface_statistics,
)
from segwise.metrics.surface import boundary_mask, scores_from_statistics


def _square(rows: slice, cols: slice, size: int = 6) -> torch.Tensor:
    x = torch.zeros(1, size, size, dtype=torch.long)
    x[0, rows, cols] = 1
    return x


# target: 3x3 square rows 1-3, cols 1-3; its boundary is the 8 pixels around (2, 2)
TARGET = _square(slice(1, 4), slice(1, 4))


def test_boundary_is_the_mask_minus_its_erosion():
    edge = boundary_mask(TARGET)[0]
    expected = (TARGET[0] == 1).clone()
    expected[2, 2] = False  # the only interior pixel of the square
    assert torch.equal(edge & (TARGET[0] == 1), expected)
    assert bool(edge[0, 0]) and not bool(edge[5, 5] & (TARGET[0, 5, 5] == 1))  # image border


def test_shift_by_one_column_by_hand():
    # prediction shifted right by one column: D_pg = [0, 0, 1, 1, 1, 0, 0, 1] (pred boundary
    # (1,2) (1,3) (1,4) (2,2) (2,4) (3,2) (3,3) (3,4)); D_gp the mirror image, sum 4 each
    pred = _square(slice(1, 4), slice(2, 5))
    kw = dict(num_classes=2)
    assert hausdorff_distance(pred, TARGET, percentile=None, **kw)[0, 1] == 1.0
    assert hausdorff_distance(pred, TARGET, **kw)[0, 1] == 1.0  # 95th pct of 4 zeros, 4 ones
    assert average_surface_distance(pred, TARGET, **kw)[0, 1] == pytest.approx(8 / 16)
    assert normalized_surface_dice(pred, TARGET, tolerance=1.0, **kw)[0, 1] == 1.0
    assert normalized_surface_dice(pred, TARGET, tolerance=0.5, **kw)[0, 1] == 0.5
    # spacing (rows 2.0, cols 0.5): every non-zero distance is one column, 0.5
    kw["spacing"] = (2.0, 0.5)
    assert hausdorff_distance(pred, TARGET, percentile=None, **kw)[0, 1] == 0.5
    assert average_surface_distance(pred, TARGET, **kw)[0, 1] == pytest.approx(4 / 16)


def test_shift_by_one_row_with_anisotropic_spacing_by_hand():
    # prediction shifted down one row, spacing (2.0, 0.5). Pred boundary (2,1) (2,2) (2,3)
    # (3,1) (3,3) (4,1) (4,2) (4,3): D_pg = [0, 0.5, 0, 0, 0, 2, 2, 2] ((2,2) is 0.5 from (2,1),
    # the bottom row 2.0 from row 3); D_gp is the same multiset ((3,2) -> 0.5, top row -> 2).
    pred = _square(slice(2, 5), slice(1, 4))
    stats = surface_statistics(pred, TARGET, num_classes=2, spacing=(2.0, 0.5), tolerance=1.0,
                               percentile=50.0)[0, 1]  # fmt: skip
    # n_pred n_target max_pg max_gp pct50_pg pct50_gp sum_pg sum_gp within_pg within_gp
    # pct50 of sorted [0, 0, 0, 0, 0.5, 2, 2, 2]: position 3.5 -> (0 + 0.5) / 2
    assert stats.tolist() == pytest.approx([8, 8, 2, 2, 0.25, 0.25, 6.5, 6.5, 5, 5])
    s = scores_from_statistics(stats)
    assert (s["hd"], s["hd_percentile"]) == (2.0, 0.25)
    assert float(s["assd"]) == pytest.approx(13 / 16) and float(s["nsd"]) == 10 / 16
    d = scores_from_statistics(stats, directed=True)
    assert float(d["assd"]) == pytest.approx(6.5 / 8) and float(d["nsd"]) == 5 / 8
    # HD95: position 0.95 * 7 = 6.65 between 2 and 2 -> 2
    hd95 = hausdorff_distance(pred, TARGET, num_classes=2, spacing=(2.0, 0.5))[0, 1]
    assert hd95 == 2.0


def test_a_distance_equal_to_the_tolerance_counts_as_within():
    # spacing (1.2, 0.8): one row and two columns apart is sqrt(1.44 + 2.56) = 2 exactly, which
    # float64 rounds to 2.0000000000000004; NSD at tolerance 2 must still be 1
    t = torch.zeros(1, 3, 3, dtype=torch.long)
    p = torch.zeros_like(t)
    t[0, 0, 0] = 1
    p[0, 1, 2] = 1
    nsd = normalized_surface_dice(p, t, num_classes=2, tolerance=2.0, spacing=(1.2, 0.8))
    assert nsd[0, 1] == 1.0
    assert normalized_surface_dice(p, t, num_classes=2, tolerance=1.99, spacing=(1.2, 0.8))[
        0, 1] == 0.0


def test_empty_rules():
    # class 2: absent from both; class 1: only in the target (the prediction missed it)
    target = TARGET.clone()
    pred = torch.zeros_like(target)
    stats = surface_statistics(pred, target, num_classes=3)
    for empty, (d_both, nsd_both) in {
        "exclude": (math.nan, math.nan), "one": (0.0, 1.0), "zero": (math.inf, 0.0),
    }.items():  # fmt: skip
        s = scores_from_statistics(stats, empty=empty)
        for name in ("hd", "hd_percentile", "assd"):
            assert s[name][0, 1] == math.inf  # one empty: infinitely far, whatever the rule
            v = float(s[name][0, 2])
            assert (math.isnan(v) and math.isnan(d_both)) or v == d_both
        assert s["nsd"][0, 1] == 0.0
        v = float(s["nsd"][0, 2])
        assert (math.isnan(v) and math.isnan(nsd_both)) or v == nsd_both
    # the other way round (predicted, absent from the target) is also inf / 0
    s = scores_from_statistics(surface_statistics(target, pred, num_classes=3))
    assert s["hd"][0, 1] == math.inf and s["nsd"][0, 1] == 0.0


def test_three_dimensions_with_spacing():
    # single voxels: target (1, 1, 1), prediction (2, 1, 1); spacing (3, 1, 1) -> 3.0
    t = torch.zeros(1, 3, 3, 3, dtype=torch.long)
    p = torch.zeros_like(t)
    t[0, 1, 1, 1] = 1
    p[0, 2, 1, 1] = 1
    kw = dict(num_classes=2, spacing=(3.0, 1.0, 1.0))
    assert hausdorff_distance(p, t, percentile=None, **kw)[0, 1] == 3.0
    assert average_surface_distance(p, t, **kw)[0, 1] == 3.0
    assert normalized_surface_dice(p, t, tolerance=2.9, **kw)[0, 1] == 0.0
    assert normalized_surface_dice(p, t, tolerance=3.0, **kw)[0, 1] == 1.0


def test_ignored_pixels_belong_to_no_class():
    # one row: target 1 1 void 0 0, prediction 1 1 1 0 0. The prediction's class-1 pixel on
    # the void is dropped, so class 1 matches exactly (it would be 1 pixel off otherwise).
    t = torch.tensor([[[1, 1, 255, 0, 0]]])
    p = torch.tensor([[[1, 1, 1, 0, 0]]])
    hd = hausdorff_distance(p, t, num_classes=2, percentile=None, ignore_index=255)
    assert hd.tolist() == [[0.0, 0.0]]
    as_background = torch.where(t == 255, 0, t)  # void read as class 0 instead
    assert hausdorff_distance(p, as_background, num_classes=2, percentile=None)[0, 1] == 1.0


def test_streaming_merge_and_state_equal_one_pass():
    torch.manual_seed(0)
    pred, target = torch.randint(0, 3, (4, 12, 12)), torch.randint(0, 3, (4, 12, 12))
    whole = BoundaryMetrics(3, spacing=(0.5, 0.5), tolerance=1.0)
    whole.update(pred, target)
    a, b = BoundaryMetrics(3, spacing=(0.5, 0.5)), BoundaryMetrics(3, spacing=(0.5, 0.5))
    a.update(pred[:1], target[:1])
    b.update(pred[1:], target[1:])
    merged = a.merge(b).compute()
    ref = whole.compute()
    for name in ("hd", "hd_percentile", "assd", "nsd"):
        assert torch.equal(getattr(merged, name), getattr(ref, name))
    restored = BoundaryMetrics(3)
    restored.load_state_dict(whole.state_dict())
    assert torch.equal(restored.compute().nsd, ref.nsd) and len(restored) == 4
    assert ref.to_dict()["mean"].keys() == {"hd", "hd95", "assd", "nsd"}
    with pytest.raises(ValueError, match="tolerance, percentile"):
        a.merge(BoundaryMetrics(3, tolerance=2.0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spacing": (1.0, -1.0)}, "spacing=\\(1.0, -1.0\\) is not valid"),
        ({"spacing": (1.0, 1.0, 1.0)}, "expected 2 positive numbers"),
        ({"tolerance": -1}, "tolerance=-1 is not valid"),
        ({"percentile": 101}, "percentile=101 is not valid"),
        ({"num_classes": 0}, "num_classes=0 is not valid"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    kw = {"num_classes": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        surface_statistics(TARGET, TARGET, **kw)


def test_bad_label_maps_are_named():
    with pytest.raises(ValueError, match="pred has type/dtype torch.float32"):
        surface_statistics(TARGET.float(), TARGET, num_classes=2)
    with pytest.raises(ValueError, match="target contains the value 7"):
        surface_statistics(TARGET, TARGET * 7, num_classes=2)
    with pytest.raises(ValueError, match="same \\(N, \\*spatial\\)"):
        surface_statistics(TARGET, TARGET[:, :3], num_classes=2)


def _blobs(n: int, c: int, size: int, seed: int) -> torch.Tensor:
    """Label maps of smooth random regions (argmax of blurred noise), every class present."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, c, size // 4, size // 4, generator=g)
    field = torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear")
    return field.argmax(1)


@pytest.mark.parametrize("directed", [False, True])
def test_against_monai(directed):
    mm = pytest.importorskip("monai.metrics")
    pred, target = _blobs(2, 3, 40, 0), _blobs(2, 3, 40, 1)
    spacing, tol = (0.7, 1.3), 1.5

    def one_hot(x):
        return torch.nn.functional.one_hot(x, 3).permute(0, 3, 1, 2).float()

    p, t = one_hot(pred), one_hot(target)
    kw = dict(num_classes=3, spacing=spacing, directed=directed)
    ref = mm.compute_hausdorff_distance(p, t, include_background=True, spacing=spacing,
                                        directed=directed)  # fmt: skip
    ours = hausdorff_distance(pred, target, percentile=None, **kw)
    torch.testing.assert_close(ours.float(), ref, rtol=1e-5, atol=1e-5)
    ref = mm.compute_hausdorff_distance(p, t, include_background=True, spacing=spacing,
                                        directed=directed, percentile=95)  # fmt: skip
    torch.testing.assert_close(hausdorff_distance(pred, target, **kw).float(), ref,
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    ref = mm.compute_average_surface_distance(p, t, include_background=True, spacing=spacing,
                                              symmetric=not directed)  # fmt: skip
    torch.testing.assert_close(average_surface_distance(pred, target, **kw).float(), ref,
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    if not directed:  # MONAI's surface Dice is symmetric only
        ref = mm.compute_surface_dice(p, t, class_thresholds=[tol] * 3, include_background=True,
                                      spacing=spacing)  # fmt: skip
        ours = normalized_surface_dice(pred, target, tolerance=tol, **kw)
        torch.testing.assert_close(ours.float(), ref, rtol=1e-6, atol=1e-6)


def test_against_torchmetrics_hausdorff():
    tm = pytest.importorskip("torchmetrics.functional.segmentation")
    pred, target = _blobs(2, 3, 32, 2), _blobs(2, 3, 32, 3)

    def one_hot(x):
        return torch.nn.functional.one_hot(x, 3).permute(0, 3, 1, 2)

    for directed in (False, True):
        ref = tm.hausdorff_distance(one_hot(pred), one_hot(target), num_classes=3,
                                    include_background=True, spacing=[0.7, 1.3],
                                    directed=directed)  # fmt: skip
        ours = hausdorff_distance(pred, target, num_classes=3, percentile=None,
                                  spacing=(0.7, 1.3), directed=directed)  # fmt: skip
        torch.testing.assert_close(ours.float(), ref.float(), rtol=1e-5, atol=1e-5)


def test_streaming_against_monai_metric_classes():
    mm = pytest.importorskip("monai.metrics")
    batches = [(_blobs(2, 3, 32, 4), _blobs(2, 3, 32, 5)),
               (_blobs(1, 3, 32, 6), _blobs(1, 3, 32, 7))]

    def one_hot(x):
        return torch.nn.functional.one_hot(x, 3).permute(0, 3, 1, 2).float()

    ours = BoundaryMetrics(3, spacing=(0.5, 0.5), tolerance=1.0)
    hd = mm.HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")
    asd = mm.SurfaceDistanceMetric(include_background=True, symmetric=True, reduction="none")
    nsd = mm.SurfaceDiceMetric([1.0] * 3, include_background=True, reduction="none")
    for pred, target in batches:
        ours.update(pred, target)
        for metric in (hd, asd, nsd):
            metric(one_hot(pred), one_hot(target), spacing=(0.5, 0.5))
    s = ours.compute()
    for mine, theirs in ((s.hd_percentile, hd), (s.assd, asd), (s.nsd, nsd)):
        torch.testing.assert_close(mine.float(), theirs.aggregate(), rtol=1e-5, atol=1e-5)
    mean = mm.HausdorffDistanceMetric(include_background=True, percentile=95)
    for pred, target in batches:
        mean(one_hot(pred), one_hot(target), spacing=(0.5, 0.5))
    assert s.mean["hd_percentile"] == pytest.approx(float(mean.aggregate()), rel=1e-5)


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_camvid_annotations_against_monai(shared_data):
    # two consecutive CamVid frames' annotations as prediction and target: real boundaries,
    # 11 classes, void (11) ignored by setting it to class 0 in both (MONAI has no pixel ignore)
    mm = pytest.importorskip("monai.metrics")
    import numpy as np
    from PIL import Image

    folder = shared_data / "camvid" / "valannot"
    names = sorted(p.name for p in folder.glob("*.png"))[:2]
    a, b = (torch.from_numpy(np.array(Image.open(folder / n))).long() for n in names)
    a, b = (torch.where(x == 11, 0, x)[None, :180, :240] for x in (a, b))  # a quarter: fast

    def one_hot(x):
        return torch.nn.functional.one_hot(x, 11).permute(0, 3, 1, 2).float()

    ours = BoundaryMetrics(11, spacing=(1.0, 1.0), tolerance=2.0)
    ours.update(a, b)
    s = ours.compute()
    kw = dict(include_background=True, spacing=(1.0, 1.0))
    ref_hd = mm.compute_hausdorff_distance(one_hot(a), one_hot(b), percentile=95, **kw)
    ref_nsd = mm.compute_surface_dice(one_hot(a), one_hot(b), class_thresholds=[2.0] * 11, **kw)
    torch.testing.assert_close(s.hd_percentile.float(), ref_hd, rtol=1e-5, atol=1e-4,
                               equal_nan=True)  # fmt: skip
    torch.testing.assert_close(s.nsd.float(), ref_nsd, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_properties_identity_symmetry_and_scaling():
    pred, target = _blobs(2, 3, 24, 8), _blobs(2, 3, 24, 9)
    same = scores_from_statistics(surface_statistics(target, target, num_classes=3))
    present = ~same["hd"].isnan()
    assert bool(present.any())
    assert bool((same["hd"][present] == 0).all()) and bool((same["nsd"][present] == 1).all())
    kw = dict(num_classes=3, spacing=(0.7, 1.3))
    ab = scores_from_statistics(surface_statistics(pred, target, **kw))
    ba = scores_from_statistics(surface_statistics(target, pred, **kw))
    for name in ("hd", "hd_percentile", "assd", "nsd"):  # symmetric metrics are symmetric
        torch.testing.assert_close(ab[name], ba[name], equal_nan=True)
    # isotropic spacing s scales every distance by s; NSD at tolerance s * tau is unchanged
    one = scores_from_statistics(surface_statistics(pred, target, num_classes=3, tolerance=1.5))
    two = scores_from_statistics(surface_statistics(pred, target, num_classes=3, spacing=2.0,
                                                    tolerance=3.0))  # fmt: skip
    torch.testing.assert_close(two["hd"], 2 * one["hd"], equal_nan=True)
    torch.testing.assert_close(two["assd"], 2 * one["assd"], equal_nan=True)
    torch.testing.assert_close(two["nsd"], one["nsd"], equal_nan=True)
