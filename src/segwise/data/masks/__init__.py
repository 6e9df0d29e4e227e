"""Mask kinds as plug-ins: one module per kind, one table (:data:`MASK_KINDS`).

Each module holds one object satisfying :class:`~segwise.data.masks.base.MaskKindSpec`
(detect / classes / check / read); :class:`~segwise.data.formats.MaskKind` stays the public
enum naming them. A new kind is one new module plus one line in :data:`MASK_KINDS`; discovery,
the check pass and the datasets only go through :func:`mask_kind_spec` and :func:`detect_kind`.
"""

from __future__ import annotations

from collections.abc import Sequence

from segwise.data.formats import MaskKind
from segwise.data.info import Sample
from segwise.data.masks.base import MaskKindSpec
from segwise.data.masks.binary import BINARY
from segwise.data.masks.coco import COCO
from segwise.data.masks.color import COLOR
from segwise.data.masks.index import INDEX
from segwise.data.masks.instance import INSTANCE
from segwise.data.masks.palette import PALETTE
from segwise.data.masks.soft import SOFT
from segwise.data.scan import MaskScan

__all__ = ["MASK_KINDS", "MaskKindSpec", "detect_kind", "mask_kind_spec"]

#: Every mask kind, in detection order: the first whose ``detect`` says yes is the kind
#: (layouts and annotator folders first, then by the scanned files; ``INDEX`` is the fallback).
MASK_KINDS: tuple[MaskKindSpec, ...] = (INSTANCE, COCO, SOFT, PALETTE, COLOR, BINARY, INDEX)

_BY_KIND = {spec.kind: spec for spec in MASK_KINDS}


def mask_kind_spec(kind: MaskKind) -> MaskKindSpec:
    """The implementation of one mask kind.

    Raises:
        ValueError: for ``AUTO`` (detect the kind first) or a kind with no module.
    """
    spec = _BY_KIND.get(MaskKind(kind))
    if spec is None:
        raise ValueError(f"mask_kind={MaskKind(kind).value!r} names no file format; expected "
                         f"one of {', '.join(k.value for k in _BY_KIND)} (detect 'auto' first)")
    return spec


def detect_kind(layout: str, samples: Sequence[Sample],
                scans: Sequence[MaskScan] | None) -> MaskKind:
    """The first kind of :data:`MASK_KINDS` whose files these are.

    Args:
        layout: the layout name found by :func:`segwise.data.pairing.find_layout`.
        samples: the pairs.
        scans: the masks' scans, or ``None`` before any mask is decoded.

    Returns:
        The kind; ``MaskKind.AUTO`` when ``scans`` is ``None`` and the layout and folders do not
        say (the masks must be scanned first). With no scan at all, ``INDEX``.
    """
    for spec in MASK_KINDS:
        if spec.detect(layout, samples, scans):
            return spec.kind
    return MaskKind.AUTO if scans is None else MaskKind.INDEX
