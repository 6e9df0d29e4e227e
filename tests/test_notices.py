"""The notice channel: printed once without source lines, or a UserWarning in library use."""

from __future__ import annotations

import io

import pytest

from segwise.notices import Level, SegwiseNotice, notify, printed


def test_printed_once_with_level_and_no_source_line():
    out = io.StringIO()
    with printed(stream=out):
        notify(Level.WARNING, "3 images left out")
        notify("warning", "3 images left out")  # the same text again: not repeated
        notify(Level.INFO, "0/255 masks read as 0/1")
    assert out.getvalue().splitlines() == [
        "segwise warning: 3 images left out",
        "segwise notice: 0/255 masks read as 0/1",
    ]


def test_min_level_drops_notices():
    out = io.StringIO()
    with printed(stream=out, min_level=Level.WARNING):
        notify(Level.INFO, "dropped")
        notify(Level.WARNING, "kept")
    assert out.getvalue() == "segwise warning: kept\n"


def test_library_use_is_a_user_warning():
    with pytest.warns(SegwiseNotice, match="segwise warning: look here"):
        notify(Level.WARNING, "look here")
    assert issubclass(SegwiseNotice, UserWarning)


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="loud"):
        notify("loud", "x")


def test_data_problems_go_through_the_channel(tmp_path):
    from segwise.data.info import Problem, Severity, raise_or_warn

    out = io.StringIO()
    problems = [Problem(Severity.WARNING, "unpaired", str(tmp_path / "a.png"), "left out")]
    with printed(stream=out):
        raise_or_warn(problems, tmp_path)
        raise_or_warn(problems, tmp_path)  # a second discovery of the same data
    assert out.getvalue() == f"segwise warning: data: {tmp_path / 'a.png'}: left out\n"
