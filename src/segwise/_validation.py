"""Small validation helpers shared by every module, so that errors read the same everywhere.

Errors are for people: each names the argument, the bad value and what is allowed.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


def as_enum(value: E | str, enum_cls: type[E], name: str) -> E:
    """Convert ``value`` to a member of ``enum_cls``, accepting the member or its string value.

    Args:
        value: an enum member or its (case-insensitive) string value.
        enum_cls: the enum class to convert to.
        name: the argument name, used in the error message.

    Raises:
        ValueError: naming ``name``, the bad value and the allowed values.
    """
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        for member in enum_cls:
            if str(member.value).lower() == key:
                return member
    allowed = ", ".join(repr(m.value) for m in enum_cls)
    raise ValueError(f"{name}={value!r} is not valid; expected one of: {allowed}")


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is > 0 (or >= 0 with ``allow_zero``)."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}={value!r} is not valid; expected a number {bound}")


def check_probability(value: float, name: str) -> None:
    """Raise ``ValueError`` unless ``0 <= value <= 1``."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} is not valid; expected a number in [0, 1]")
