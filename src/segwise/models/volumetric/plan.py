"""Per-stage kernels and strides of a 3D U-Net from the voxel spacing (nnU-Net's rule).

Pure maths, no torch. With an isotropic (or no) spacing every stage has 3x3x3 kernels and
stride 2 on every axis. With an anisotropic spacing (thick slices, e.g. ``(3.0, 0.8, 0.8)``
mm), as nnU-Net's experiment planner does (Isensee et al. 2021, "Network topology"):

- an axis is downsampled at a stage only while its spacing is at most twice the finest one,
  so the in-plane axes are pooled first until the voxels become about isotropic;
- an axis gets kernel 3 once its spacing is less than twice the finest, kernel 1 before (a
  3-voxel kernel across thick slices mixes tissue millimetres apart).

nnU-Net also stops pooling an axis when its feature map would fall below 4 voxels for the
planned patch; segwise's models accept any input size (they pad to the divisor), so the plan
here depends on the spacing and the depth only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["StagePlan", "plan_stages"]


@dataclass(frozen=True)
class StagePlan:
    """Kernels and strides of every stage of a 3D encoder, on axes ``(D, H, W)``.

    Attributes:
        kernels: per stage, the conv kernel per axis (3 or 1); ``depth + 1`` entries.
        strides: per stage, the downsampling on entering it; ``strides[0] == (1, 1, 1)``.
    """

    kernels: tuple[tuple[int, int, int], ...]
    strides: tuple[tuple[int, int, int], ...]

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Per axis, the product of the strides: input sizes the encoder needs a multiple of."""
        return tuple(math.prod(s[a] for s in self.strides) for a in range(3))  # type: ignore[return-value]

    @property
    def reductions(self) -> tuple[tuple[int, int, int], ...]:
        """Per stage, the cumulative stride per axis w.r.t. the input."""
        out, current = [], (1, 1, 1)
        for stride in self.strides:
            current = tuple(c * s for c, s in zip(current, stride, strict=True))  # type: ignore[assignment]
            out.append(current)
        return tuple(out)


def _check_spacing(spacing: Sequence[float] | None) -> tuple[float, float, float]:
    if spacing is None:
        return (1.0, 1.0, 1.0)
    values = tuple(spacing) if isinstance(spacing, (list, tuple)) else None
    if (
        values is None
        or len(values) != 3
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            for v in values
        )
    ):
        raise ValueError(
            f"spacing={spacing!r} is not valid; expected None or three positive numbers "
            "(D, H, W voxel sizes, e.g. (3.0, 0.8, 0.8) mm)"
        )
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def plan_stages(spacing: Sequence[float] | None, depth: int) -> StagePlan:
    """Kernels and strides for ``depth`` downsamplings at voxel ``spacing``.

    Args:
        spacing: voxel size per axis ``(D, H, W)`` (any unit), or ``None`` for isotropic.
        depth: number of downsampling stages (>= 1).

    Returns:
        A :class:`StagePlan` with ``depth + 1`` stages.

    Raises:
        ValueError: ``spacing`` is not three positive numbers, or ``depth < 1``.

    Example: ``plan_stages((3.0, 0.8, 0.8), 3)`` gives kernels ``(1,3,3), (3,3,3), (3,3,3),
    (3,3,3)`` and strides ``(1,1,1), (1,2,2), (2,2,2), (2,2,2)``.
    """
    current = list(_check_spacing(spacing))
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth={depth!r} is not valid; expected an integer >= 1")

    def kernel() -> tuple[int, int, int]:
        finest = min(current)
        return tuple(3 if s < 2 * finest else 1 for s in current)  # type: ignore[return-value]

    kernels, strides = [kernel()], [(1, 1, 1)]
    for _ in range(depth):
        finest = min(current)
        stride = tuple(2 if s <= 2 * finest else 1 for s in current)
        current = [s * st for s, st in zip(current, stride, strict=True)]
        strides.append(stride)  # type: ignore[arg-type]
        kernels.append(kernel())
    return StagePlan(tuple(kernels), tuple(strides))
