"""Option enums of the Dice family (definitions in ``docs/dice.md``).

Every loss also accepts the string value of a member (e.g. ``scope="image"``).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["DiceScope", "GDiceWeight", "LossEmptyRule", "Reduction"]


class DiceScope(str, Enum):
    """Over which pixels one Dice is computed before averaging.

    - ``BATCH``: one Dice per class over every pixel of the batch (sums over ``N, H, W``).
    - ``IMAGE``: one Dice per (image, class), then averaged over the scored units.
    """

    BATCH = "batch"
    IMAGE = "image"


class LossEmptyRule(str, Enum):
    """What a unit (class, or (image, class)) whose target is empty (``sum(g) == 0``) scores.

    - ``SKIP``: the unit is left out of the average: an empty/empty class is never a failure.
      False positives on an empty target get no Dice gradient from that unit (in multiclass
      they are still penalised through the true class's Dice; the CE term of ``DiceCELoss``
      penalises them everywhere). If no unit is scored the loss is ``0``.
    - ``FP_RATE``: the unit scores ``Dice = 1 - sum(p) / n`` with ``n`` its number of valid
      pixels (``sum(p**2)`` with the squared denominator): ``1`` for an empty prediction,
      falling linearly with the false-positive mass.
    """

    SKIP = "skip"
    FP_RATE = "fp_rate"


class GDiceWeight(str, Enum):
    """Class weights ``w_c`` of the generalized Dice (Sudre et al. 2017), ``G_c = sum(g_c)``.

    - ``SQUARE``: ``w_c = 1 / G_c**2`` (the paper).
    - ``SIMPLE``: ``w_c = 1 / G_c``.
    - ``UNIFORM``: ``w_c = 1``.

    Classes with ``G_c == 0`` get ``w_c = 0`` (see ``docs/dice.md``).
    """

    SQUARE = "square"
    SIMPLE = "simple"
    UNIFORM = "uniform"


class Reduction(str, Enum):
    """How a loss turns its per-unit (or per-pixel) values into what ``forward`` returns.

    - ``MEAN``: the weighted mean over the scored units (region losses) or the weighted mean over
      the target mass (pixel losses); the default.
    - ``SUM``: the weighted sum of the same terms (not divided by anything).
    - ``NONE``: the weighted terms themselves, unreduced; shapes are given by each loss
      (units that are not scored hold 0).
    """

    MEAN = "mean"
    SUM = "sum"
    NONE = "none"
