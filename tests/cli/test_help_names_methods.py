"""`segwise train --help` names every registered instance method (the help text is static, so
that --help imports no torch; this test keeps it true when a method is added)."""

from __future__ import annotations

from segwise.cli import train
from segwise.instance.methods import INSTANCE_METHODS


def test_train_help_names_every_instance_method():
    for name in INSTANCE_METHODS.names():
        assert name in train.DESCRIPTION, name
