"""Lazy public names for packages (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str,
    names: Mapping[str, str],
    namespace: dict[str, Any],
    *,
    eager: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` resolving ``names`` on first access.

    Args:
        package: the package's ``__name__`` (for error messages).
        names: public name -> module that defines it.
        namespace: the package's ``globals()``; a resolved name is cached there.
        eager: public names already defined in the package (listed by ``__dir__``).

    Usage, in a package ``__init__``::

        __getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
    """
    listed = sorted({*names, *eager})

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return list(listed)

    return __getattr__, __dir__
