"""3D (volumetric) segmentation models: ``(N, C, D, H, W)`` -> logits ``(N, K, D, H, W)``.

``unet3d`` (Çiçek et al. 2016) and ``resenc_unet3d`` (nnU-Net's residual-encoder U-Net),
registered in :mod:`segwise.models.architectures` with ``spatial_dims=3``; per-stage kernels
and strides from the voxel spacing in :mod:`segwise.models.volumetric.plan`.
"""

from __future__ import annotations

from segwise.models.volumetric.plan import StagePlan, plan_stages
from segwise.models.volumetric.unet3d import (
    ResEncoder3D,
    UNet3DDecoder,
    UNet3DEncoder,
    VolumeHead,
    build_resenc_unet3d,
    build_unet3d,
)

__all__ = [
    "ResEncoder3D",
    "StagePlan",
    "UNet3DDecoder",
    "UNet3DEncoder",
    "VolumeHead",
    "build_resenc_unet3d",
    "build_unet3d",
    "plan_stages",
]
