"""YOLACT's network, losses and decoding; the method object is `segwise.instance.methods.yolact`."""

from __future__ import annotations

__all__: list[str] = []
