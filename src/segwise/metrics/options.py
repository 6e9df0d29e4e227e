"""Option enums of the semantic metrics (definitions in ``docs/metrics.md``)."""

from __future__ import annotations

import math
from enum import Enum

__all__ = ["Average", "MetricEmptyRule"]


class MetricEmptyRule(str, Enum):
    """Per-image Dice of a class that is absent from both an image's target and prediction.

    - ``EXCLUDE``: undefined (NaN) and left out of every mean (the default; the same rule as the
      dataset-level scores, and it keeps 9 absent classes from lifting an image's mean).
    - ``ONE``: a perfect 1.0 (the rule of the binary :func:`dice_score`; common for binary tasks
      with many empty images, where a correct "nothing here" should count).
    - ``ZERO``: a failure, 0.0 (the strictest rule: only images where the class is present
      can score).

    A class absent from the target but predicted always scores 0.
    """

    EXCLUDE = "exclude"
    ONE = "one"
    ZERO = "zero"

    @property
    def score(self) -> float:
        """The overlap score (Dice, IoU) of two empty masks under this rule: NaN, 1.0 or 0.0."""
        return {"exclude": math.nan, "one": 1.0, "zero": 0.0}[self.value]


class Average(str, Enum):
    """How per-class values become one number (:meth:`SegmentationScores.average`).

    - ``MACRO``: the plain mean over the classes whose value is defined (NaN left out).
    - ``WEIGHTED``: the mean weighted by each class's support (target pixels), over the classes
      with support > 0 and a defined value.
    - ``SUM``: the sum of the defined values (NaN if none is defined).
    """

    MACRO = "macro"
    WEIGHTED = "weighted"
    SUM = "sum"
