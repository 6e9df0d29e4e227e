"""Necks: modules between an encoder and a detection-style head (feature pyramids)."""

from __future__ import annotations

from segwise.models.necks.fpn import FPN, EncoderFPN, ExtraLevels, build_encoder_fpn

__all__ = ["FPN", "EncoderFPN", "ExtraLevels", "build_encoder_fpn"]
