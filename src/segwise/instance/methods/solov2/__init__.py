"""SOLOv2's network, targets, loss and decoding; the method object is
`segwise.instance.methods.solov2`."""

from __future__ import annotations

__all__: list[str] = []
