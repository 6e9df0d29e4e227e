"""Losses: the Dice family (Dice, Jaccard, generalized Dice, Tversky, focal Tversky), Lovasz,
cross-entropy, focal, Dice + CE, and weighted sums of any of them.

Pure maths in :mod:`segwise.losses.functional` (and ``focal_loss``, ``tversky_loss``,
``focal_tversky_loss``, ``lovasz_loss`` in their modules); thin ``nn.Module`` wrappers;
:func:`create_loss` builds one by :class:`LossName` (``"dice+focal"`` for a sum). Definitions of
every quantity: ``docs/dice.md``.
"""

from __future__ import annotations

from segwise.losses.combined import CrossEntropyLoss, DiceCELoss
from segwise.losses.dice import DiceLoss, GeneralizedDiceLoss, JaccardLoss
from segwise.losses.factory import LossName, create_loss, loss_options
from segwise.losses.focal import FocalLoss, focal_loss
from segwise.losses.functional import DiceStatistics
from segwise.losses.lovasz import LovaszLoss, lovasz_loss
from segwise.losses.options import DiceScope, GDiceWeight, LossEmptyRule, Reduction
from segwise.losses.tversky import (
    FocalTverskyLoss,
    TverskyLoss,
    focal_tversky_loss,
    tversky_loss,
)
from segwise.losses.weighted_sum import WeightedSumLoss

__all__ = [
    "CrossEntropyLoss",
    "DiceCELoss",
    "DiceLoss",
    "DiceScope",
    "DiceStatistics",
    "FocalLoss",
    "FocalTverskyLoss",
    "GDiceWeight",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "LossEmptyRule",
    "LossName",
    "LovaszLoss",
    "Reduction",
    "TverskyLoss",
    "WeightedSumLoss",
    "create_loss",
    "focal_loss",
    "focal_tversky_loss",
    "loss_options",
    "lovasz_loss",
    "tversky_loss",
]
