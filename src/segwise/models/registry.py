"""An explicit name -> object registry (a dict that refuses duplicates and explains misses).

Registration happens in plain code in the module that owns the registry
(``segwise.models.encoders`` and ``segwise.models.architectures``), never as an import side
effect of the registered modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to specs.

    Args:
        kind: what is registered (``"model"``, ``"encoder"``), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name``.

        Raises:
            ValueError: if ``name`` is already registered.
        """
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str, *, hint: str = "") -> T:
        """Return the item registered as ``name``.

        Raises:
            ValueError: naming the bad value and every registered name.
        """
        try:
            return self._items[name]
        except (KeyError, TypeError):
            allowed = ", ".join(repr(n) for n in self._items)
            extra = f" {hint}" if hint else ""
            raise ValueError(
                f"{self.kind}={name!r} is not valid; expected one of: {allowed}{extra}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
