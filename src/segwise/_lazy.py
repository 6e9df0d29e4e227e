"""Lazy public names for packages (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["import_extra", "lazy_exports"]


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


def import_extra(module: str, *, extra: str, purpose: str, package: str | None = None) -> Any:
    """Import an optional dependency, or say which extra installs it.

    Args:
        module: the module to import (e.g. ``"nibabel"``, ``"pycocotools.mask"``).
        extra: the segwise extra that installs it (``"medical"``, ``"instance"``, ...).
        purpose: what needs it, for the message (e.g. ``"reading NIfTI volumes"``).
        package: the PyPI name when it differs from the module's top level.

    Raises:
        ImportError: naming the purpose, the extra and the package.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        name = package or module.split(".")[0]
        raise ImportError(f"{purpose} needs {name}: `pip install 'segwise[{extra}]'` (or "
                          f"`pip install {name}`)") from err
