"""One channel for what segwise tells its user that is not an error: notices and warnings.

Library code calls :func:`notify`. Where the notice goes depends on who is listening:

- inside :func:`printed` (the command line installs it around every verb), each notice is
  printed once as ``segwise warning: TEXT`` (or ``segwise notice: TEXT``) on stderr: no
  Python source line, no ``UserWarning`` prefix, and a text already printed is not repeated;
- otherwise (segwise used as a library) it is a :class:`SegwiseNotice`, a ``UserWarning``
  that Python's ``warnings`` filters (and ``pytest.warns``) see as usual.

Example:
    >>> from segwise.notices import Level, notify, printed
    >>> with printed():  # doctest: +SKIP
    ...     notify(Level.WARNING, "3 images left out")
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum
from typing import TextIO

__all__ = ["Level", "SegwiseNotice", "notify", "printed"]


class Level(str, Enum):
    """How much a notice matters (ordered: ``INFO`` < ``WARNING``)."""

    INFO = "info"  # something was done for the user (e.g. "0/255 masks read as 0/1")
    WARNING = "warning"  # something may be wrong and the user should look

    @property
    def rank(self) -> int:
        return 0 if self is Level.INFO else 1

    @property
    def label(self) -> str:
        """The word printed in front of the text."""
        return "notice" if self is Level.INFO else "warning"


class SegwiseNotice(UserWarning):
    """A segwise notice delivered through Python's ``warnings`` (library use)."""


@dataclass
class _Printer:
    stream: TextIO | None
    min_level: Level
    seen: set[str] = field(default_factory=set)

    def emit(self, level: Level, text: str) -> None:
        if level.rank < self.min_level.rank or text in self.seen:
            return
        self.seen.add(text)
        stream = self.stream if self.stream is not None else sys.stderr
        print(f"segwise {level.label}: {text}", file=stream, flush=True)


_PRINTER: ContextVar[_Printer | None] = ContextVar("segwise_notice_printer", default=None)


def notify(level: Level | str, text: str) -> None:
    """Tell the user ``text`` at ``level`` (see the module docstring for where it goes).

    Args:
        level: a :class:`Level` or its value (``"info"``, ``"warning"``).
        text: one self-contained sentence or two; name the file or value it is about.
    """
    level = Level(level)
    printer = _PRINTER.get()
    if printer is not None:
        printer.emit(level, text)
    else:
        warnings.warn(f"segwise {level.label}: {text}", SegwiseNotice, stacklevel=3)


@contextmanager
def printed(
    *, stream: TextIO | None = None, min_level: Level = Level.INFO
) -> Iterator[None]:
    """Print notices (each distinct text once) instead of raising Python warnings.

    Args:
        stream: where to print (default: ``sys.stderr`` at the time of printing).
        min_level: notices below this level are dropped (``evaluate`` and ``predict`` show
            only warnings: the data notices were shown when the model was trained).
    """
    token = _PRINTER.set(_Printer(stream, min_level))
    try:
        yield
    finally:
        _PRINTER.reset(token)
