"""Instance metrics: hand-computed DSB / AP cases, brute-force cross-check, PQ, COCO AP."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segwise.instance.matching import match_pairs, overlap
from segwise.instance.representation import InstancePrediction
from segwise.metrics.instance import (
    DSB_THRESHOLDS,
    InstanceMetrics,
    average_precision,
    dsb_score,
    panoptic_counts,
    panoptic_quality,
)

from .conftest import rect_map

S = (8, 10)


def test_thresholds_are_the_dsb_ones():
    assert DSB_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_perfect_prediction_with_other_ids():
    gt = rect_map(S, [(1, 0, 0, 3, 3), (2, 4, 4, 4, 4)])
    pred = rect_map(S, [(9, 0, 0, 3, 3), (5, 4, 4, 4, 4)])
    assert average_precision(pred, gt).tolist() == [1.0] * 10
    assert dsb_score(pred, gt) == 1.0


def test_split():
    # gt: one 4x4 object (16 px); pred splits it into 4x3 (IoU 12/16 = 0.75) and 4x1 (4/16 = 0.25)
    gt = rect_map(S, [(1, 0, 0, 4, 4)])
    pred = rect_map(S, [(1, 0, 0, 4, 3), (2, 0, 3, 4, 1)])
    ap = average_precision(pred, gt)
    # t < 0.75: TP 1, FP 1, FN 0 -> 1/2; t >= 0.75 (IoU must be > t): TP 0, FP 2, FN 1 -> 0
    assert ap.tolist() == [0.5] * 5 + [0.0] * 5
    assert dsb_score(pred, gt) == pytest.approx(2.5 / 10)


def test_merge():
    # gt: 4x6 (24 px) and 4x2 (8 px) side by side; pred: one 4x8 (32 px) over both
    gt = rect_map(S, [(1, 0, 0, 4, 6), (2, 0, 6, 4, 2)])
    pred = rect_map(S, [(1, 0, 0, 4, 8)])
    # IoU 24/32 = 0.75 and 8/32 = 0.25; t < 0.75: TP 1, FP 0, FN 1 -> 1/2; else 0/3
    assert average_precision(pred, gt).tolist() == [0.5] * 5 + [0.0] * 5


def test_missed_and_spurious():
    gt = rect_map(S, [(1, 0, 0, 3, 3), (2, 4, 4, 4, 4)])
    one = rect_map(S, [(1, 0, 0, 3, 3)])
    # missed: TP 1, FN 1 -> 1/2 at every threshold
    assert average_precision(gt, one).tolist() == [0.5] * 10
    # spurious: gt has one object, pred has it plus one more: TP 1, FP 1 -> 1/2
    assert average_precision(gt, one).tolist() == [0.5] * 10


def test_partial_overlap_and_strict_threshold():
    # gt 10x10 = 100 px, pred 10x9 = 90 px inside: IoU 0.9, which is not > 0.9
    gt = rect_map((10, 10), [(1, 0, 0, 10, 10)])
    pred = rect_map((10, 10), [(1, 0, 0, 10, 9)])
    assert average_precision(pred, gt).tolist() == [1.0] * 8 + [0.0] * 2
    assert dsb_score(pred, gt) == pytest.approx(0.8)


def test_empty_images():
    empty = np.zeros(S, int)
    one = rect_map(S, [(1, 0, 0, 3, 3)])
    assert dsb_score(empty, empty) == 1.0  # nothing to find, nothing found
    assert dsb_score(one, empty) == 0.0  # no gt, one prediction: 0 / (0 + 1 + 0)
    assert dsb_score(empty, one) == 0.0  # one gt, no prediction: 0 / (0 + 0 + 1)


def test_low_threshold_uses_optimal_assignment():
    # 1-row image: g1 = cols 0-4 (5 px), g2 = cols 5-9; p1 = cols 2-7 (6 px), p2 = cols 0-1
    gt = rect_map((1, 10), [(1, 0, 0, 1, 5), (2, 0, 5, 1, 5)])
    pred = rect_map((1, 10), [(1, 0, 2, 1, 6), (2, 0, 0, 1, 2)])
    # IoU(g1,p1) = 3/8, IoU(g2,p1) = 3/8, IoU(g1,p2) = 2/5; greedy on g1 could take p2 or p1,
    # the optimum at t = 0.3 matches both: g1-p2 and g2-p1 -> TP 2
    gi, pj, iou = match_pairs(overlap(gt, pred), 0.3)
    assert sorted(zip(gi.tolist(), pj.tolist(), strict=True)) == [(0, 1), (1, 0)]
    assert sorted(iou.tolist()) == pytest.approx([3 / 8, 2 / 5])
    assert average_precision(pred, gt, thresholds=[0.3]).tolist() == [1.0]
    assert average_precision(pred, gt, thresholds=[0.39]).tolist() == [1 / 3]  # only g1-p2


def test_overlap_table_counts():
    gt = rect_map((2, 4), [(3, 0, 0, 2, 2), (8, 0, 2, 2, 2)])
    pred = rect_map((2, 4), [(1, 0, 1, 2, 2)])
    ov = overlap(gt, pred)
    assert ov.gt_ids.tolist() == [3, 8] and ov.pred_ids.tolist() == [1]
    assert ov.gt_areas.tolist() == [4, 4] and ov.pred_areas.tolist() == [4]
    assert ov.intersection.tolist() == [2, 2]
    assert ov.iou.tolist() == [2 / 6, 2 / 6]
    with pytest.raises(ValueError, match="equal shapes"):
        overlap(gt, pred[:, :3])


# ---------------------------------------------------------------- brute-force cross-check
def _brute_ap(gt, pred, thresholds):
    """Per-pair loop over full masks; exhaustive one-to-one search for thresholds < 0.5."""
    g_ids = [i for i in np.unique(gt) if i]
    p_ids = [i for i in np.unique(pred) if i]
    iou = np.zeros((len(g_ids), len(p_ids)))
    for a, g in enumerate(g_ids):
        for b, p in enumerate(p_ids):
            inter = np.logical_and(gt == g, pred == p).sum()
            union = np.logical_or(gt == g, pred == p).sum()
            iou[a, b] = inter / union
    out = []
    for t in thresholds:
        hit = iou > t
        if t >= 0.5:
            assert (hit.sum(0) <= 1).all() and (hit.sum(1) <= 1).all()  # uniqueness
            tp = int(hit.sum())
        else:
            tp = 0
            small, large = sorted([len(g_ids), len(p_ids)])
            rows_first = len(g_ids) <= len(p_ids)
            for perm in itertools.permutations(range(large), small):
                pairs = [(i, j) if rows_first else (j, i) for i, j in enumerate(perm)]
                tp = max(tp, sum(bool(hit[i, j]) for i, j in pairs))
        denom = len(g_ids) + len(p_ids) - tp
        out.append(1.0 if denom == 0 else tp / denom)
    return out


rects = st.lists(
    st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(1, 6), st.integers(1, 6)),
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(
    gt_rects=rects, pred_rects=rects, jitter=st.lists(st.integers(-1, 1), min_size=8, max_size=8)
)
def test_ap_matches_brute_force(gt_rects, pred_rects, jitter):
    gt = rect_map((12, 12), [(i + 1, *r) for i, r in enumerate(gt_rects)])
    # half the prediction is a jittered copy of the gt rectangles, so matches happen
    moved = [
        (i + 1, max(y + jitter[2 * (i % 4)], 0), max(x + jitter[2 * (i % 4) + 1], 0), h, w)
        for i, (y, x, h, w) in enumerate(gt_rects)
    ]
    extra = [(len(moved) + i + 1, *r) for i, r in enumerate(pred_rects[:2])]
    pred = rect_map((12, 12), moved + extra)
    thresholds = [0.1, 0.3, *DSB_THRESHOLDS]
    ours = average_precision(pred, gt, thresholds=thresholds)
    assert ours.tolist() == pytest.approx(_brute_ap(gt, pred, thresholds))


# ---------------------------------------------------------------- panoptic quality
def test_panoptic_quality_hand_example():
    # gt: A (class 1, 4x4), B (class 2, 4x4), C (class 1, 2x2)
    gt = InstancePrediction.from_label_map(
        rect_map((10, 10), [(1, 0, 0, 4, 4), (2, 0, 5, 4, 4), (3, 6, 0, 2, 2)]), labels=[1, 2, 1]
    )
    # pred: A' = A minus a column (class 1, IoU 12/16), B' = B exactly but class 1,
    # D spurious (class 2)
    pred = InstancePrediction.from_label_map(
        rect_map((10, 10), [(1, 0, 0, 4, 3), (2, 0, 5, 4, 4), (3, 6, 6, 2, 2)]), labels=[1, 1, 2]
    )
    counts = panoptic_counts(pred, gt)
    # class 1: TP (A, A'), FN C, FP B' -> SQ 0.75, RQ 1 / (1 + 0.5 + 0.5) = 0.5, PQ 0.375
    # class 2: TP 0, FN B, FP D -> SQ 0, RQ 0, PQ 0
    assert (counts.tp, counts.fp, counts.fn) == ({1: 1, 2: 0}, {1: 1, 2: 1}, {1: 1, 2: 1})
    pq = panoptic_quality(counts)
    assert pq["per_class"][1]["pq"] == pytest.approx(0.375)
    assert pq["per_class"][1]["sq"] == pytest.approx(0.75)
    assert pq["per_class"][1]["rq"] == pytest.approx(0.5)
    assert pq["per_class"][2]["pq"] == 0.0
    assert pq["pq"] == pytest.approx(0.1875)
    assert pq["sq"] == pytest.approx(0.375) and pq["rq"] == pytest.approx(0.25)


def test_panoptic_quality_empty_is_nan():
    pq = panoptic_quality(panoptic_counts(*[InstancePrediction.empty((3, 3))] * 2))
    assert math.isnan(pq["pq"]) and pq["per_class"] == {}


# ---------------------------------------------------------------- COCO mask AP
def test_coco_ap_perfect_is_one():
    gt = InstancePrediction.from_label_map(rect_map(S, [(1, 0, 0, 3, 3), (2, 4, 4, 4, 4)]))
    metrics = InstanceMetrics(coco=True)
    metrics.update(gt, gt)
    coco = metrics.compute().coco
    assert coco["ap"] == coco["ap50"] == coco["ap75"] == coco["ap_small"] == 1.0
    assert math.isnan(coco["ap_medium"]) and math.isnan(coco["ap_large"])  # no such objects


def test_coco_ap_constructed_case():
    # 2 gt objects; detections: a spurious one (score 0.95) ranked above a perfect one (0.9).
    # PR curve: (R 0, P 0), (R 0.5, P 0.5); interpolated precision is 0.5 for the 51 recall
    # points 0.00..0.50 and 0 for the 50 above -> AP = 51 * 0.5 / 101 at every IoU threshold
    gt = InstancePrediction.from_label_map(rect_map(S, [(1, 0, 0, 3, 3), (2, 4, 4, 4, 4)]))
    pred = InstancePrediction.from_label_map(
        rect_map(S, [(1, 0, 0, 3, 3), (2, 0, 6, 2, 2)]), scores=[0.9, 0.95]
    )
    metrics = InstanceMetrics(coco=True)
    metrics.update(pred, gt)
    coco = metrics.compute().coco
    expected = 51 * 0.5 / 101
    assert coco["ap"] == pytest.approx(expected)
    assert coco["ap50"] == pytest.approx(expected) and coco["ap75"] == pytest.approx(expected)


@pytest.mark.parametrize("max_detections", [100, 1000, 3])
def test_coco_ap_at_any_detection_limit(max_detections):
    # COCOeval.summarize() fixes maxDets=100 for AP and the area APs (-1 otherwise); ours reads
    # eval["precision"] at the chosen limit, so the constructed case holds at any limit
    gt = InstancePrediction.from_label_map(rect_map(S, [(1, 0, 0, 3, 3), (2, 4, 4, 4, 4)]))
    pred = InstancePrediction.from_label_map(
        rect_map(S, [(1, 0, 0, 3, 3), (2, 0, 6, 2, 2)]), scores=[0.9, 0.95]
    )
    metrics = InstanceMetrics(coco=True, coco_max_detections=max_detections)
    metrics.update(pred, gt)
    coco = metrics.compute().coco
    expected = 51 * 0.5 / 101
    assert coco["ap"] == pytest.approx(expected)
    assert coco["ap_small"] == pytest.approx(expected)
    assert math.isnan(coco["ap_large"])


def test_coco_ap_with_a_limit_below_the_detections():
    # one detection allowed per image: only the spurious top-scored one counts -> AP 0
    gt = InstancePrediction.from_label_map(rect_map(S, [(1, 0, 0, 3, 3), (2, 4, 4, 4, 4)]))
    pred = InstancePrediction.from_label_map(
        rect_map(S, [(1, 0, 0, 3, 3), (2, 0, 6, 2, 2)]), scores=[0.9, 0.95]
    )
    metrics = InstanceMetrics(coco=True, coco_max_detections=1)
    metrics.update(pred, gt)
    assert metrics.compute().coco["ap"] == 0.0


def test_coco_ap_no_detections_is_zero():
    gt = rect_map(S, [(1, 0, 0, 3, 3)])
    metrics = InstanceMetrics(coco=True)
    metrics.update(np.zeros(S, int), gt)
    coco = metrics.compute().coco
    assert coco["ap"] == 0.0 and math.isnan(coco["ap_large"])


# ---------------------------------------------------------------- streaming accumulator
def test_accumulator_averages_over_images_and_merges():
    gt = rect_map(S, [(1, 0, 0, 4, 4)])
    split = rect_map(S, [(1, 0, 0, 4, 3), (2, 0, 3, 4, 1)])
    empty = np.zeros(S, int)
    a, b = InstanceMetrics(), InstanceMetrics()
    a.update(gt, gt)  # DSB 1
    a.update(split, gt)  # DSB 0.25
    b.update(empty, empty)  # DSB 1 (empty image)
    a.merge(b)
    res = a.compute()
    assert res.num_images == 3
    assert res.dsb_score == pytest.approx((1 + 0.25 + 1) / 3)
    assert res.ap50 == pytest.approx((1 + 0.5 + 1) / 3)
    # summed counts at IoU > 0.5: TP 2, FP 1, FN 0
    assert res.precision50 == pytest.approx(2 / 3) and res.recall50 == 1.0
    assert res.f1_50 == pytest.approx(4 / 5)
    assert res.mean_matched_iou50 == pytest.approx((1 + 0.75) / 2)
    # PQ class 1: TP 2, FP 1, FN 0, IoU sum 1.75 -> SQ 0.875, RQ 2 / 2.5 = 0.8
    assert res.pq == pytest.approx(0.875 * 0.8)
    d = res.to_dict()
    assert d["ap@0.75"] == pytest.approx((1 + 0 + 1) / 3)
    assert d["pq/class_1"] == pytest.approx(0.7) and res.coco is None
    a.reset()
    assert a.compute().num_images == 0 and math.isnan(a.compute().dsb_score)


def test_accumulator_bad_input():
    with pytest.raises(ValueError, match="including 0.5"):
        InstanceMetrics(thresholds=[0.6, 0.7])
    metrics = InstanceMetrics()
    with pytest.raises(ValueError, match="equal"):
        metrics.update(np.zeros((3, 3), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="pred has shape"):
        metrics.update(np.zeros((3,), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="pred has 1 images and target 2"):
        metrics.update([np.zeros((3, 3), int)], [np.zeros((3, 3), int)] * 2)


def _same(a, b):  # results equal, nan == nan
    return json.dumps(a.compute().to_dict()) == json.dumps(b.compute().to_dict())


def test_accumulator_batches_state_dict_and_all_reduce_without_distributed():
    gt = rect_map(S, [(1, 0, 0, 4, 4)])
    split = rect_map(S, [(1, 0, 0, 4, 3), (2, 0, 3, 4, 1)])
    one_by_one = InstanceMetrics(coco=True)
    one_by_one.update(gt, gt)
    one_by_one.update(split, gt)
    batched = InstanceMetrics(coco=True)
    batched.update(np.stack([gt, split]), np.stack([gt, gt]))  # (N, H, W) arrays
    assert _same(batched, one_by_one)
    restored = InstanceMetrics(coco=True)
    restored.load_state_dict(json.loads(json.dumps(batched.state_dict())))  # JSON-safe
    assert _same(restored, one_by_one)
    assert restored.all_reduce() is restored  # no process group: unchanged
    assert restored.compute().num_images == 2
    with pytest.raises(ValueError, match="expected the same settings"):
        restored.merge(InstanceMetrics())
