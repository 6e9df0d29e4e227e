"""A weighted sum of loss terms, e.g. ``dice+focal`` with weights ``1,1`` from the CLI."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["WeightedSumLoss"]


class WeightedSumLoss(nn.Module):
    """``sum_k weight_k * term_k(input, target)``.

    Args:
        terms: the loss modules, each called as ``term(input, target)`` and returning a scalar.
        weights: one finite weight >= 0 per term (not all 0); default all 1.
        names: optional display names of the terms (e.g. ``("dice", "focal")``).

    Shape:
        ``forward(input, target)``: as the terms; returns a scalar.
    """

    def __init__(
        self,
        terms: Sequence[nn.Module],
        *,
        weights: Sequence[float] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        terms = list(terms)
        if not terms or not all(isinstance(t, nn.Module) for t in terms):
            raise ValueError("terms must be a non-empty sequence of loss modules")
        w = [1.0] * len(terms) if weights is None else list(weights)
        if len(w) != len(terms):
            raise ValueError(
                f"loss weights {w} do not match the {len(terms)} loss terms; expected one weight "
                "per term (e.g. --loss dice+focal --loss-weights 1,0.5)"
            )
        bad = [x for x in w if isinstance(x, bool) or not isinstance(x, (int, float))
               or not math.isfinite(x) or x < 0]
        if bad or not any(x > 0 for x in w):
            raise ValueError(
                f"loss weights {w} are not valid; expected finite numbers >= 0, not all 0"
            )
        self.terms = nn.ModuleList(terms)
        self.weights = tuple(float(x) for x in w)
        self.names = tuple(names) if names is not None else tuple(
            type(t).__name__ for t in terms)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Weighted sum of every term's loss of ``input`` against ``target``."""
        total = None
        for weight, term in zip(self.weights, self.terms, strict=True):
            if weight == 0:
                continue
            value = weight * term(input, target)
            total = value if total is None else total + value
        return total

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g} * {n}" for w, n in zip(self.weights, self.names, strict=True))
