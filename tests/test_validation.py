from __future__ import annotations

import pytest

from segwise._validation import as_enum, check_positive, check_probability
from segwise.enums import Task


def test_as_enum_accepts_member_and_string():
    assert as_enum(Task.BINARY, Task, "task") is Task.BINARY
    assert as_enum("MultiClass", Task, "task") is Task.MULTICLASS


def test_as_enum_error_names_argument_value_and_choices():
    with pytest.raises(ValueError, match=r"task='softmax'.*'binary', 'multiclass', 'multilabel'"):
        as_enum("softmax", Task, "task")
    with pytest.raises(ValueError, match="task=3"):
        as_enum(3, Task, "task")


def test_checks():
    check_positive(1e-6, "eps")
    check_positive(0, "eps", allow_zero=True)
    with pytest.raises(ValueError, match=r"eps=0 .*> 0"):
        check_positive(0, "eps")
    check_probability(0.5, "p")
    with pytest.raises(ValueError, match=r"p=1.5"):
        check_probability(1.5, "p")
