"""Losses: the Dice family (Dice, Jaccard, generalized Dice), cross-entropy and Dice + CE.

Pure maths in :mod:`segwise.losses.functional`; thin ``nn.Module`` wrappers in
:mod:`~segwise.losses.dice` and :mod:`~segwise.losses.combined`; :func:`create_loss` builds
one by :class:`LossName`. Definitions of every quantity: ``docs/dice.md``.
"""

from __future__ import annotations

from segwise.losses.combined import CrossEntropyLoss, DiceCELoss
from segwise.losses.dice import DiceLoss, GeneralizedDiceLoss, JaccardLoss
from segwise.losses.factory import LossName, create_loss, loss_options
from segwise.losses.functional import DiceStatistics
from segwise.losses.options import DiceScope, EmptyRule, GDiceWeight

__all__ = [
    "CrossEntropyLoss",
    "DiceCELoss",
    "DiceLoss",
    "DiceScope",
    "DiceStatistics",
    "EmptyRule",
    "GDiceWeight",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "LossName",
    "create_loss",
    "loss_options",
]
