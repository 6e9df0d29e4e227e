"""3D (volumetric) segmentation models: ``(N, C, D, H, W)`` -> logits ``(N, K, D, H, W)``.

``unet3d`` (Çiçek et al. 2016), ``resenc_unet3d`` (nnU-Net's residual-encoder U-Net) and
``resunet3d`` (Kerfoot et al. 2018's residual U-Net, the CPU-light one), registered in
:mod:`segwise.models.architectures` with ``spatial_dims=3``; per-stage kernels and strides
from the voxel spacing in :mod:`segwise.models.volumetric.plan`.
"""

from __future__ import annotations

from segwise.models.volumetric.plan import StagePlan, plan_stages
from segwise.models.volumetric.resunet3d import (
    ResidualUnit3D,
    ResUNet3DDecoder,
    ResUNet3DEncoder,
    ResUNet3DHead,
    build_resunet3d,
)
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
    "ResUNet3DDecoder",
    "ResUNet3DEncoder",
    "ResUNet3DHead",
    "ResidualUnit3D",
    "StagePlan",
    "UNet3DDecoder",
    "UNet3DEncoder",
    "VolumeHead",
    "build_resenc_unet3d",
    "build_resunet3d",
    "build_unet3d",
    "plan_stages",
]
