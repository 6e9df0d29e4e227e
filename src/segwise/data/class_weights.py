"""Per-class loss weights from the training split's label counts: pure functions.

One input form serves images and volumes: a sequence with one ``{class index: pixels}``
mapping per training image (2D: what discovery's mask checks counted per file,
``DatasetIndex.class_pixels``; volumes: ``VolumeScan.label_values``/``label_counts``, through
:func:`counts_from_values`). Keys outside ``[0, K)`` (the ignore label) are left out.

The rules (:class:`~segwise.enums.ClassWeightRule`), with ``n_c`` the pixels (voxels) of class
``c`` over the training images, ``N = sum_c n_c`` and ``K`` the classes, background included:

- ``inverse_frequency``: ``w_c = N / (K * n_c)``; a class holding ``1/K`` of the pixels gets 1
  (the "balanced" weights of King & Zeng 2001, scikit-learn's ``compute_class_weight``).
- ``median_frequency``: ``w_c = median_f / f_c`` with ``f_c = n_c / P_c``, ``P_c`` the
  labelled pixels of the images in which ``c`` is present, and ``median_f`` the median of the
  ``f_c`` of the present classes (Eigen & Fergus, "Predicting depth, surface normals and
  semantic labels with a common multi-scale convolutional architecture", ICCV 2015; SegNet's
  weighting). "Labelled" leaves the ignore label out of ``P_c``.
- ``effective_number``: ``w_c = (1 - beta) / (1 - beta**n_c)``, then scaled so the ``K``
  weights sum to ``K`` (Cui et al., "Class-balanced loss based on effective number of
  samples", CVPR 2019, with the paper's normalisation to a sum of ``K``); ``beta`` default
  0.9999, one of the paper's values. Its samples are pixels here: ``beta**n_c`` is below 1e-4
  from about 92,000 pixels on, so with ``beta = 0.9999`` every class larger than that gets the
  same weight; a ``beta`` closer to 1 (``1 - 1/N``, e.g. 0.999999) spreads large classes apart.

A class with no pixels in the training images has no frequency. None of the papers (nor
nnU-Net or MONAI) defines its weight; here it gets the smallest weight of the present classes
(for ``inverse_frequency`` and ``effective_number`` the most frequent class's; the weight of a
class without target pixels only punishes predicting it, so a large one would push the model
away from a class it may meet later), and :attr:`ClassWeights.absent` lists it so that the
caller can say so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from segwise._validation import as_enum
from segwise.enums import ClassWeightRule

__all__ = ["DEFAULT_BETA", "RARE_SHARE", "ClassWeights", "class_weights_from_counts",
           "counts_from_values", "rare_class_note"]

#: ``beta`` of the effective-number rule (Cui et al. 2019's value)
DEFAULT_BETA = 0.9999
#: share of the labelled pixels under which ``segwise data inspect`` calls a class rare
RARE_SHARE = 0.01


@dataclass(frozen=True)
class ClassWeights:
    """Weights computed by :func:`class_weights_from_counts`.

    Attributes:
        values: one weight per class, background included (class index = position).
        absent: classes with no pixels in the counted images; each got the smallest weight of
            the present classes (module docstring).
    """

    values: tuple[float, ...]
    absent: tuple[int, ...] = ()


def counts_from_values(values: Iterable[int], counts: Iterable[int], *,
                       num_classes: int) -> dict[int, int]:
    """``{class: pixels}`` of one image from its label values and their pixel counts (e.g. a
    volume's ``VolumeScan.label_values``/``label_counts``); values outside
    ``[0, num_classes)`` (the ignore label) are left out."""
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)
            if 0 <= int(v) < num_classes and int(c) > 0}


def _totals(counts: Sequence[Mapping[int, int]], k: int) -> tuple[list[int], list[int]]:
    """``(n_c, P_c)`` per class: pixels of c, and labelled pixels of the images holding c."""
    pixels, present_in = [0] * k, [0] * k
    for image in counts:
        kept = {int(c): int(n) for c, n in image.items() if 0 <= int(c) < k}
        if any(n < 0 for n in kept.values()):
            raise ValueError(f"pixel counts must be >= 0, got {dict(image)}")
        labelled = sum(kept.values())
        for c, n in kept.items():
            if n > 0:
                pixels[c] += n
                present_in[c] += labelled
    return pixels, present_in


def class_weights_from_counts(
    counts: Sequence[Mapping[int, int]],
    *,
    num_classes: int,
    rule: ClassWeightRule | str,
    beta: float = DEFAULT_BETA,
) -> ClassWeights:
    """Per-class weights by ``rule`` from per-image class pixel counts (module docstring).

    Args:
        counts: one ``{class index: pixels}`` mapping per training image (or volume); keys
            outside ``[0, num_classes)`` are left out.
        num_classes: ``K``, the classes, background included (2 for binary data).
        rule: a :class:`~segwise.enums.ClassWeightRule` (or its value).
        beta: ``effective_number`` only: ``0 <= beta < 1`` (0 gives every class weight 1).

    Returns:
        The :class:`ClassWeights`: ``num_classes`` finite weights > 0, and the absent classes.

    Raises:
        ValueError: an unknown rule, a bad ``beta`` or ``num_classes``, a negative count, or
            images that hold no labelled pixel at all.
    """
    rule = as_enum(rule, ClassWeightRule, "class_weights rule")
    k = num_classes
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"num_classes={k!r} is not valid; expected an int >= 1")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta={beta!r} is not valid; expected 0 <= beta < 1 (e.g. 0.9999)")
    pixels, present_in = _totals(counts, k)
    total = sum(pixels)
    if total == 0:
        raise ValueError(f"the {len(counts)} training image(s) hold no labelled pixel of the "
                         f"{k} classes; {rule.value} weights cannot be computed from them")
    present = [c for c in range(k) if pixels[c] > 0]
    if rule is ClassWeightRule.INVERSE_FREQUENCY:
        raw = {c: total / (k * pixels[c]) for c in present}
    elif rule is ClassWeightRule.MEDIAN_FREQUENCY:
        freq = {c: pixels[c] / present_in[c] for c in present}
        median = statistics.median(freq.values())
        raw = {c: median / freq[c] for c in present}
    else:  # EFFECTIVE_NUMBER: 1 - beta**n as -expm1(n log beta), exact for beta near 1
        raw = {c: 1.0 if beta == 0.0 else (1.0 - beta) / -math.expm1(pixels[c] * math.log(beta))
               for c in present}
    smallest = min(raw.values())  # for the absent classes (module docstring)
    values = [raw.get(c, smallest) for c in range(k)]
    if rule is ClassWeightRule.EFFECTIVE_NUMBER:
        scale = k / sum(values)
        values = [v * scale for v in values]
    return ClassWeights(tuple(float(v) for v in values),
                        tuple(c for c in range(k) if pixels[c] == 0))


def rare_class_note(pixels: Sequence[int], names: Sequence[str], *,
                    share: float = RARE_SHARE) -> str | None:
    """The ``segwise data inspect`` line for the present classes under ``share`` of the
    labelled pixels, naming them and the class-weight setting that raises them; None when
    there is none (absent classes are reported as such, not here).

    Args:
        pixels: pixels (voxels) per class, class index = position.
        names: one name per class.
        share: the threshold, a fraction of all the labelled pixels (default 1 %).
    """
    total = sum(int(n) for n in pixels)
    rare = [(c, int(n) / total) for c, n in enumerate(pixels) if total and 0 < n < share * total]
    if not rare:
        return None
    listed = ", ".join(f"{names[c]} {100 * f:.2g} %" for c, f in rare)
    return (f"rare classes (under {100 * share:g} % of the labelled pixels): {listed}; "
            "`segwise train --class-weights median_frequency` weights the loss by class "
            "rarity (or inverse_frequency, effective_number; docs/dice.md §5c)")
