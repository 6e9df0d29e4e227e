"""Matching the instances of two label maps: the pure maths under `segwise.metrics.instance`.

The overlap table comes from one ``np.bincount`` over pixel pairs (``gt * (P + 1) + pred`` on
consecutively relabelled maps), so the cost is ``O(H*W + G*P)`` with no loop over instance pairs;
only the non-zero pairs (``nnz``, at most ``H*W``) are kept. Matching at IoU threshold ``t``:

- ``t >= 0.5``: a pair matches iff ``IoU > t``. Two instances of one map are disjoint, so an
  instance has at most one partner with IoU > 0.5; the matching is unique, no assignment needed.
- ``t < 0.5``: the one-to-one matching with the most pairs of ``IoU > t`` (ties broken by the
  larger total IoU), by ``scipy.optimize.linear_sum_assignment`` (as StarDist does).

Crowd regions (COCO ``iscrowd: 1``) are compared with a prediction by the share of the
prediction inside the region, ``|p & r| / |p|`` (:func:`crowd_fraction`): pycocotools'
``maskUtils.iou`` with ``iscrowd=1``, which divides by the detection's area, not the union.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Overlap", "crowd_fraction", "match_count", "match_pairs", "overlap"]

# beyond this many cells the dense (G+1)*(P+1) bincount is replaced by a sort (np.unique)
_DENSE_LIMIT = 1 << 24


@dataclass(frozen=True, eq=False)
class Overlap:
    """Sparse overlap of two label maps.

    Attributes:
        gt_ids: ``(G,)`` the sorted non-zero IDs of the ground-truth map.
        pred_ids: ``(P,)`` the sorted non-zero IDs of the predicted map.
        gt_areas: ``(G,)`` pixel counts.
        pred_areas: ``(P,)`` pixel counts.
        gt_index: ``(nnz,)`` index into ``gt_ids`` of each overlapping pair.
        pred_index: ``(nnz,)`` index into ``pred_ids`` of each overlapping pair.
        intersection: ``(nnz,)`` shared pixels of each pair (> 0).
        iou: ``(nnz,)`` intersection over union of each pair.
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    gt_areas: np.ndarray
    pred_areas: np.ndarray
    gt_index: np.ndarray
    pred_index: np.ndarray
    intersection: np.ndarray
    iou: np.ndarray

    @property
    def num_gt(self) -> int:
        return len(self.gt_ids)

    @property
    def num_pred(self) -> int:
        return len(self.pred_ids)


def overlap(gt: np.ndarray, pred: np.ndarray) -> Overlap:
    """Sparse overlap table and IoU of every overlapping (gt, pred) instance pair.

    Args:
        gt: ``(H, W)`` integer instance map, 0 = background.
        pred: ``(H, W)`` integer instance map, 0 = background.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"gt has shape {gt.shape} and pred {pred.shape}; expected equal shapes")
    gt_vals, g = np.unique(gt, return_inverse=True)
    pred_vals, p = np.unique(pred, return_inverse=True)
    g, p = g.ravel().astype(np.int64), p.ravel().astype(np.int64)
    # make index 0 mean background in both maps, whatever IDs are present
    g_has_bg = gt_vals.size > 0 and gt_vals[0] == 0
    p_has_bg = pred_vals.size > 0 and pred_vals[0] == 0
    if not g_has_bg:
        g += 1
    if not p_has_bg:
        p += 1
    gt_ids = gt_vals[1:] if g_has_bg else gt_vals
    pred_ids = pred_vals[1:] if p_has_bg else pred_vals
    n_g, n_p = len(gt_ids) + 1, len(pred_ids) + 1
    codes = g * n_p + p
    if n_g * n_p <= _DENSE_LIMIT:
        table = np.bincount(codes, minlength=n_g * n_p)
        pairs = np.flatnonzero(table)
        counts = table[pairs]
    else:  # many instances: sort instead of a huge dense table
        pairs, counts = np.unique(codes, return_counts=True)
    gi, pj = np.divmod(pairs, n_p)
    gt_areas = np.bincount(g, minlength=n_g)[1:]
    pred_areas = np.bincount(p, minlength=n_p)[1:]
    both = (gi > 0) & (pj > 0)
    gi, pj, inter = gi[both] - 1, pj[both] - 1, counts[both]
    union = gt_areas[gi] + pred_areas[pj] - inter
    return Overlap(
        gt_ids=gt_ids.astype(np.int64),
        pred_ids=pred_ids.astype(np.int64),
        gt_areas=gt_areas.astype(np.int64),
        pred_areas=pred_areas.astype(np.int64),
        gt_index=gi.astype(np.int64),
        pred_index=pj.astype(np.int64),
        intersection=inter.astype(np.int64),
        iou=(inter / union).astype(np.float64),
    )


def match_pairs(
    ov: Overlap, threshold: float, *, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of the pairs with ``IoU > threshold``.

    Args:
        ov: the overlap table.
        threshold: IoU threshold in [0, 1).
        allowed: optional ``bool (nnz,)``: pairs that may match (e.g. same class).

    Returns:
        ``(gt_index, pred_index, iou)`` of the matched pairs, each ``(TP,)``.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold={threshold!r} is not valid; expected a number in [0, 1)")
    ok = ov.iou > threshold
    if allowed is not None:
        ok &= allowed
    gi, pj, iou = ov.gt_index[ok], ov.pred_index[ok], ov.iou[ok]
    if threshold >= 0.5 or len(iou) == 0:
        return gi, pj, iou  # unique: IoU > 0.5 pairs never share an instance
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix

    # only rows/columns with a candidate pair take part; the cost prefers more matches, then IoU
    rows, gi_c = np.unique(gi, return_inverse=True)
    cols, pj_c = np.unique(pj, return_inverse=True)
    n_match = min(len(rows), len(cols))
    cost = coo_matrix(
        (-(1.0 + iou / (2.0 * n_match)), (gi_c, pj_c)), shape=(len(rows), len(cols))
    ).toarray()
    r, c = linear_sum_assignment(cost)
    good = cost[r, c] < 0
    r, c = r[good], c[good]
    pair_iou = np.zeros((len(rows), len(cols)))
    pair_iou[gi_c, pj_c] = iou
    return rows[r], cols[c], pair_iou[r, c]


def match_count(ov: Overlap, threshold: float) -> int:
    """Number of matched pairs (true positives) at ``threshold``, class-agnostic."""
    return len(match_pairs(ov, threshold)[0])


def crowd_fraction(ov: Overlap, pred: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Share of each predicted instance inside each crowd region.

    Args:
        ov: the overlap table of ``pred`` (for its ``pred_ids`` and ``pred_areas``).
        pred: ``(H, W)`` integer instance map, 0 = background.
        crowd: ``bool (R, H, W)`` crowd regions (they may overlap one another).

    Returns:
        ``float64 (R, P)``: ``|p & r| / |p|`` (pycocotools' crowd "IoU": intersection over the
        detection's area), ``P = ov.num_pred``.
    """
    pred = np.asarray(pred)
    crowd = np.asarray(crowd, dtype=bool)
    if crowd.ndim != 3 or crowd.shape[1:] != pred.shape:
        raise ValueError(f"crowd has shape {crowd.shape}; expected (R, {pred.shape[0]}, "
                         f"{pred.shape[1]}) masks of the prediction's size")
    out = np.zeros((len(crowd), ov.num_pred), dtype=np.float64)
    if not ov.num_pred:
        return out
    for r, region in enumerate(crowd):
        inside = pred[region]
        inside = inside[inside != 0]
        if not inside.size:
            continue
        ids, counts = np.unique(inside, return_counts=True)
        col = np.searchsorted(ov.pred_ids, ids)
        out[r, col] = counts / ov.pred_areas[col]
    return out
