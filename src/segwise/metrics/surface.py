"""Boundary (surface) distance metrics as pure functions: Hausdorff, HD95, ASSD, NSD.

Definitions (``docs/metrics.md`` §7), for one image and class c, N-dimensional:

- The **boundary** ``S`` of a mask is its set of pixels with at least one face neighbour
  (4-connectivity in 2D, 6 in 3D) outside the mask or outside the image: the mask minus its
  binary erosion by the cross-shaped element (the pixels MONAI's ``get_mask_edges`` returns).
- Distances are between pixel centres in physical units: pixel index times ``spacing`` per
  axis (anisotropic spacing allowed), Euclidean by default, or chessboard (L-infinity) or
  taxicab (L1) with ``distance_metric`` (:class:`DistanceMetric`, MONAI's option).
- ``d(x, S) = min_{y in S} |x - y|``; the directed distances are ``D_pg = {d(x, S_g) : x in
  S_p}`` (prediction to target) and ``D_gp = {d(y, S_p) : y in S_g}``.
- Hausdorff ``HD = max(max D_pg, max D_gp)``; percentile Hausdorff ``HDq = max(q-th percentile
  of D_pg, of D_gp)`` (linear interpolation; q = 95: HD95), as MONAI and Huttenlocher et al.
  1993; average symmetric surface distance ``ASSD = (sum D_pg + sum D_gp) / (|S_p| + |S_g|)``;
  normalised surface Dice at tolerance tau (Nikolov et al. 2021, eq. 1 with one boundary point
  per pixel) ``NSD = (|{D_pg <= tau}| + |{D_gp <= tau}|) / (|S_p| + |S_g|)``; ``d <= tau`` is
  tested with a relative slack of 1e-9 so that a distance equal to tau in exact arithmetic
  counts despite rounding.
- ``directed=True`` uses ``D_pg`` only: ``max D_pg``, its percentile, ``mean D_pg`` and
  ``|{D_pg <= tau}| / |S_p|``.
- Empty masks: one of the two empty gives HD = HDq = ASSD = inf and NSD = 0 (every distance to
  an empty set is infinite; MONAI gives inf for HD and ASSD, 0 for NSD, but NaN for HDq, the
  percentile of infinite distances); both empty is undefined and follows the
  :class:`~segwise.metrics.MetricEmptyRule`: NaN (``exclude``), a perfect 0 / NSD 1 (``one``) or a
  failure inf / NSD 0 (``zero``).
- Pixels whose target is ``ignore_index`` belong to no class; boundary pixels of the prediction
  lying on them are dropped.

Only boundary pixels enter: their coordinates go into a k-d tree (``scipy.spatial.cKDTree``,
queried with the Minkowski ``p`` of the distance: 2, infinity or 1), so the cost grows with the
boundary length, not the image area.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum

import torch
import torch.nn.functional as F

from segwise._validation import as_enum
from segwise.metrics._checks import check_ignore_index, check_num_classes
from segwise.metrics.per_image import MetricEmptyRule

__all__ = [
    "STAT_FIELDS",
    "DistanceMetric",
    "average_surface_distance",
    "boundary_mask",
    "hausdorff_distance",
    "normalized_surface_dice",
    "scores_from_statistics",
    "surface_statistics",
]

# Per (image, class) sufficient statistics, the state of the streaming metric (float64)
STAT_FIELDS = ("n_pred", "n_target", "max_pg", "max_gp", "pct_pg", "pct_gp", "sum_pg", "sum_gp",
               "within_pg", "within_gp")  # fmt: skip
_NP, _NG, _MAXPG, _MAXGP, _PCTPG, _PCTGP, _SUMPG, _SUMGP, _INPG, _INGP = range(10)


class DistanceMetric(str, Enum):
    """How far apart two pixel centres are (MONAI's ``distance_metric``).

    For index offsets ``d = (d_1, ..., d_n)`` (pixels) and ``spacing`` ``s`` (physical units per
    pixel along each axis), the distance in the units of ``spacing``:

    - ``EUCLIDEAN``: ``sqrt(sum_i (d_i s_i)^2)`` (the default).
    - ``CHESSBOARD``: ``max_i |d_i| s_i`` (L-infinity: a diagonal step costs one pixel).
    - ``TAXICAB``: ``sum_i |d_i| s_i`` (L1, Manhattan: a diagonal step costs two).

    At spacing 1, chessboard and taxicab are exactly scipy's
    ``ndimage.distance_transform_cdt(metric="chessboard" | "taxicab")``, which MONAI uses; MONAI
    ignores ``spacing`` for them (pixel units), segwise applies it per axis as above.
    """

    EUCLIDEAN = "euclidean"
    CHESSBOARD = "chessboard"
    TAXICAB = "taxicab"

    @property
    def p(self) -> float:
        """The Minkowski exponent of the distance (``scipy.spatial.cKDTree.query``'s ``p``)."""
        return {"euclidean": 2.0, "chessboard": math.inf, "taxicab": 1.0}[self.value]


def check_spacing(spacing: Sequence[float] | float | None, ndim: int) -> tuple[float, ...]:
    """``spacing`` as ``ndim`` positive finite floats (None: all 1; one number: isotropic)."""
    if spacing is None:
        return (1.0,) * ndim
    values = [spacing] if isinstance(spacing, (int, float)) else list(spacing)
    if len(values) == 1:
        values = values * ndim
    ok = len(values) == ndim and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        for v in values
    )
    if not ok:
        raise ValueError(
            f"spacing={spacing!r} is not valid; expected {ndim} positive numbers (one per "
            f"spatial axis, e.g. 0.5,0.5) or one number for isotropic pixels"
        )
    return tuple(float(v) for v in values)


def _check_options(tolerance: float, percentile: float | None) -> None:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not (
        math.isfinite(tolerance) and tolerance >= 0
    ):
        raise ValueError(f"tolerance={tolerance!r} is not valid; expected a number >= 0")
    if percentile is not None and (
        isinstance(percentile, bool)
        or not isinstance(percentile, (int, float))
        or not 0 <= percentile <= 100
    ):
        raise ValueError(f"percentile={percentile!r} is not valid; expected a number in [0, 100]")


def _check_maps(pred, target, num_classes: int, ignore_index: int | None):
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor) or x.is_floating_point() or x.is_complex():
            what = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{name} has type/dtype {what}; expected an integer label map (N, H, W) or "
                "(N, D, H, W) of class indices"
            )
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(
            f"pred shape {tuple(pred.shape)} and target shape {tuple(target.shape)} are not "
            "valid; expected the same (N, *spatial) label maps, e.g. (N, H, W)"
        )
    pred, target = pred.long().cpu(), target.long().cpu()
    if pred.numel():
        if int(pred.min()) < 0 or int(pred.max()) >= num_classes:
            bad = pred[(pred < 0) | (pred >= num_classes)][0]
            raise ValueError(
                f"pred contains the value {int(bad)}; expected class indices in [0, {num_classes})"
            )
        bad_t = (target < 0) | (target >= num_classes)
        if ignore_index is not None:
            bad_t &= target != ignore_index
        if bool(bad_t.any()):
            raise ValueError(
                f"target contains the value {int(target[bad_t][0])}; expected class indices in "
                f"[0, {num_classes})" + ("" if ignore_index is None else f" or {ignore_index}")
            )
    return pred, target


def boundary_mask(labels: torch.Tensor) -> torch.Tensor:
    """Pixels of each label map whose face neighbours are not all of their own label.

    Args:
        labels: (N, *spatial) integer label maps.

    Returns:
        (N, *spatial) bool: True on the boundary of the region of the pixel's own label (the
        image border counts as outside every region).
    """
    nd = labels.ndim - 1
    padded = F.pad(labels.unsqueeze(1), (1, 1) * nd, value=-1).squeeze(1)
    center = (slice(None),) + (slice(1, -1),) * nd
    edge = torch.zeros(labels.shape, dtype=torch.bool)
    for axis in range(1, nd + 1):
        for lo in (0, 2):
            idx = list(center)
            idx[axis] = slice(lo, lo + labels.shape[axis])
            edge |= padded[tuple(idx)] != labels
    return edge


def _grouped_points(labels: torch.Tensor, keep: torch.Tensor, num_classes: int) -> list:
    """Boundary coordinates per class: ``out[k]`` = (coords (M, nd) int64 numpy, offsets (N+1,))
    with image i's points in rows ``offsets[i]:offsets[i + 1]``."""
    edge = boundary_mask(labels) & keep
    out = []
    for k in range(num_classes):
        where = (edge & (labels == k)).nonzero()  # row-major: grouped by image
        counts = torch.bincount(where[:, 0], minlength=labels.shape[0])
        offsets = torch.zeros(labels.shape[0] + 1, dtype=torch.int64)
        offsets[1:] = counts.cumsum(0)
        out.append((where[:, 1:].numpy(), offsets.numpy()))
    return out


def _directed(dist, tolerance: float, percentile: float) -> tuple:
    """(max, percentile, sum, count <= tolerance) of one direction's distances (numpy)."""
    import numpy as np

    # ``<= tolerance`` with a relative slack of 1e-9: a distance equal to the tolerance in
    # exact arithmetic (e.g. spacing (0.8, 1.2): sqrt(1.2**2 + 1.6**2) = 2) counts as within
    # even when floating-point rounding puts it a few ulps above
    within = float((dist <= tolerance * (1 + 1e-9)).sum())
    return (float(dist.max()), float(np.percentile(dist, percentile)), float(dist.sum()), within)


def surface_statistics(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    num_classes: int,
    spacing: Sequence[float] | float | None = None,
    tolerance: float = 1.0,
    percentile: float = 95.0,
    ignore_index: int | None = None,
    distance_metric: DistanceMetric | str = DistanceMetric.EUCLIDEAN,
) -> torch.Tensor:
    """Per (image, class) boundary statistics, from which every distance metric follows.

    Args:
        pred: (N, *spatial) integer predicted class indices in ``[0, C)`` (2D: (N, H, W)).
        target: (N, *spatial) integer target class indices in ``[0, C)`` or ``ignore_index``.
        num_classes: number of classes C.
        spacing: physical size of a pixel along each spatial axis (None: 1).
        tolerance: NSD tolerance tau, in the units of ``spacing``.
        percentile: the q of the percentile Hausdorff distance.
        ignore_index: target value of pixels that belong to no class, or None.
        distance_metric: euclidean, chessboard or taxicab distance between pixel centres
            (:class:`DistanceMetric`), in the units of ``spacing``.

    Returns:
        (N, C, 10) float64 tensor, fields :data:`STAT_FIELDS`: boundary sizes ``|S_p|``,
        ``|S_g|``; per direction (pg: prediction to target, gp: back) the max, the percentile,
        the sum of the distances and the number within ``tolerance``. A direction with no
        points holds NaN (max, percentile) and 0 (sum, count); distances to an empty set inf.
    """
    import numpy as np
    from scipy.spatial import cKDTree

    check_num_classes(num_classes)
    check_ignore_index(ignore_index, num_classes)
    _check_options(tolerance, percentile)
    p = as_enum(distance_metric, DistanceMetric, "distance_metric").p
    pred, target = _check_maps(pred, target, num_classes, ignore_index)
    scale = np.asarray(check_spacing(spacing, pred.ndim - 1), dtype=np.float64)
    keep = torch.ones_like(pred, dtype=torch.bool) if ignore_index is None else (
        target != ignore_index)
    safe_target = target if ignore_index is None else target.masked_fill(~keep, num_classes)
    small = torch.int16 if num_classes < 2**15 - 1 else torch.int64  # less memory traffic
    p_groups = _grouped_points(pred.to(small), keep, num_classes)
    g_groups = _grouped_points(safe_target.to(small), keep, num_classes)
    n, c = pred.shape[0], num_classes
    out = np.zeros((n, c, len(STAT_FIELDS)), dtype=np.float64)
    out[..., [_MAXPG, _MAXGP, _PCTPG, _PCTGP]] = math.nan
    for k in range(c):
        (p_pts, p_off), (g_pts, g_off) = p_groups[k], g_groups[k]
        for i in range(n):
            a = p_pts[p_off[i]: p_off[i + 1]] * scale
            b = g_pts[g_off[i]: g_off[i + 1]] * scale
            row = out[i, k]
            row[_NP], row[_NG] = len(a), len(b)
            if len(a) and len(b):
                d_pg = cKDTree(b).query(a, k=1, p=p)[0]
                d_gp = cKDTree(a).query(b, k=1, p=p)[0]
                row[[_MAXPG, _PCTPG, _SUMPG, _INPG]] = _directed(d_pg, tolerance, percentile)
                row[[_MAXGP, _PCTGP, _SUMGP, _INGP]] = _directed(d_gp, tolerance, percentile)
            elif len(a):
                row[[_MAXPG, _PCTPG, _SUMPG]] = math.inf
            elif len(b):
                row[[_MAXGP, _PCTGP, _SUMGP]] = math.inf
    return torch.from_numpy(out)


def scores_from_statistics(
    stats: torch.Tensor,
    *,
    directed: bool = False,
    empty: MetricEmptyRule | str = MetricEmptyRule.EXCLUDE,
) -> dict[str, torch.Tensor]:
    """Every distance metric from :func:`surface_statistics` output (module docstring).

    Args:
        stats: (..., 10) float64 statistics.
        directed: prediction-to-target distances only.
        empty: rule when both boundaries are empty (:class:`~segwise.metrics.MetricEmptyRule`).

    Returns:
        ``{"hd", "hd_percentile", "assd", "nsd"}``, each of shape ``stats.shape[:-1]``.
    """
    empty = as_enum(empty, MetricEmptyRule, "empty")
    s = stats.double()
    npred, ntar = s[..., _NP], s[..., _NG]
    if directed:
        hd, pct = s[..., _MAXPG], s[..., _PCTPG]
        total, num, within = npred, s[..., _SUMPG], s[..., _INPG]
    else:
        hd = torch.maximum(s[..., _MAXPG], s[..., _MAXGP])
        pct = torch.maximum(s[..., _PCTPG], s[..., _PCTGP])
        total = npred + ntar
        num, within = s[..., _SUMPG] + s[..., _SUMGP], s[..., _INPG] + s[..., _INGP]
    both = (npred > 0) & (ntar > 0)  # otherwise exactly one is empty, or both are
    none = (npred == 0) & (ntar == 0)
    inf, nan = torch.full_like(hd, math.inf), torch.full_like(hd, math.nan)
    assd = torch.where(both, num / total.clamp_min(1), inf)
    nsd = torch.where(both, within / total.clamp_min(1), torch.zeros_like(hd))
    hd = torch.where(both, hd, inf)
    pct = torch.where(both, pct, inf)
    if empty is MetricEmptyRule.EXCLUDE:
        fill_d, fill_n = nan, nan
    elif empty is MetricEmptyRule.ONE:
        fill_d, fill_n = torch.zeros_like(hd), torch.ones_like(hd)
    else:  # ZERO: scored as a failure
        fill_d, fill_n = inf, torch.zeros_like(hd)
    out = {"hd": hd, "hd_percentile": pct, "assd": assd, "nsd": nsd}
    for name in ("hd", "hd_percentile", "assd"):
        out[name] = torch.where(none, fill_d, out[name])
    out["nsd"] = torch.where(none, fill_n, out["nsd"])
    return out


def _metric(name, pred, target, *, num_classes, spacing, ignore_index, directed, empty,
            distance_metric, tolerance=1.0, percentile=95.0):
    stats = surface_statistics(pred, target, num_classes=num_classes, spacing=spacing,
                               tolerance=tolerance, percentile=percentile,
                               ignore_index=ignore_index, distance_metric=distance_metric)
    return scores_from_statistics(stats, directed=directed, empty=empty)[name]


def hausdorff_distance(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    num_classes: int,
    percentile: float | None = 95.0,
    directed: bool = False,
    spacing: Sequence[float] | float | None = None,
    ignore_index: int | None = None,
    empty: MetricEmptyRule | str = MetricEmptyRule.EXCLUDE,
    distance_metric: DistanceMetric | str = DistanceMetric.EUCLIDEAN,
) -> torch.Tensor:
    """Hausdorff distance per (image, class); ``percentile=None`` for the maximum, 95 for HD95.

    Args:
        pred, target: (N, *spatial) integer label maps (see :func:`surface_statistics`).
        num_classes: number of classes C.
        percentile: q of the percentile Hausdorff distance, or None for the maximum.
        directed: prediction-to-target distances only.
        spacing: physical pixel size per spatial axis (None: 1).
        ignore_index: target value of pixels that belong to no class.
        empty: rule when the class is absent from both (:class:`~segwise.metrics.MetricEmptyRule`).
        distance_metric: euclidean (default), chessboard or taxicab (:class:`DistanceMetric`).

    Returns:
        (N, C) float64 distances in the units of ``spacing`` (inf when exactly one of the two
        is empty).
    """
    name = "hd" if percentile is None else "hd_percentile"
    return _metric(name, pred, target, num_classes=num_classes, spacing=spacing,
                   ignore_index=ignore_index, directed=directed, empty=empty,
                   distance_metric=distance_metric,
                   percentile=95.0 if percentile is None else percentile)


def average_surface_distance(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    num_classes: int,
    directed: bool = False,
    spacing: Sequence[float] | float | None = None,
    ignore_index: int | None = None,
    empty: MetricEmptyRule | str = MetricEmptyRule.EXCLUDE,
    distance_metric: DistanceMetric | str = DistanceMetric.EUCLIDEAN,
) -> torch.Tensor:
    """Average symmetric surface distance (ASSD; ``directed=True``: mean of ``D_pg``).

    Arguments as :func:`hausdorff_distance`. Returns (N, C) float64, in the units of
    ``spacing``.
    """
    return _metric("assd", pred, target, num_classes=num_classes, spacing=spacing,
                   ignore_index=ignore_index, directed=directed, empty=empty,
                   distance_metric=distance_metric)


def normalized_surface_dice(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    num_classes: int,
    tolerance: float = 1.0,
    directed: bool = False,
    spacing: Sequence[float] | float | None = None,
    ignore_index: int | None = None,
    empty: MetricEmptyRule | str = MetricEmptyRule.EXCLUDE,
    distance_metric: DistanceMetric | str = DistanceMetric.EUCLIDEAN,
) -> torch.Tensor:
    """Normalised surface Dice at ``tolerance`` (in the units of ``spacing``, measured with
    ``distance_metric``), in [0, 1].

    Other arguments as :func:`hausdorff_distance`. Returns (N, C) float64 (0 when exactly one
    of the two is empty).
    """
    return _metric("nsd", pred, target, num_classes=num_classes, spacing=spacing,
                   ignore_index=ignore_index, directed=directed, empty=empty,
                   distance_metric=distance_metric, tolerance=tolerance)
