"""The adapter of semantic runs on volumes (``DataInfo.spatial_dims == 3``).

What differs from 2D images (:class:`~segwise.engine.adapters.SemanticAdapter`, whose loss,
model building and training step it keeps):

- data: random patches with forced foreground (:class:`~segwise.data.VolumePatchDataset`,
  ``data.patch_size``, ``data.foreground_fraction``) and the 3D augmentation
  (:class:`~segwise.data.volume_augment.VolumeAugment`; ``data.volume_augment``: flips by
  default, nnU-Net's full preset on request), whole volumes for validation;
- the model's ``spacing`` option is the data's voxel size unless the user gave one (pooling
  and kernels per axis follow it, :mod:`segwise.models.volumetric.plan`);
- validation: each volume through the Gaussian sliding window with the patch as the tile
  (overlap 0.5, nnU-Net's), scored by the same :class:`~segwise.engine.evaluation.SemanticScorer`
  (Dice and IoU over voxels; per-volume Dice); the overlay pictures show the axial slice
  through the most labelled voxels of each volume.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from segwise.engine.adapters import SemanticAdapter, ValidationResult
from segwise.engine.config import DataConfig, VolumeAugmentPreset

__all__ = ["DEFAULT_VOLUME_MODEL", "VOLUME_OVERLAP", "VolumeAdapter"]

_AUGMENT_LINES = {
    VolumeAugmentPreset.LIGHT: "flips on each axis",
    VolumeAugmentPreset.NNUNET: "flips, in-plane 90-degree turns, scale 0.7-1.4 (p 0.2), "
                                "brightness/contrast/gamma/noise",
    VolumeAugmentPreset.NONE: "none",
}

#: the model a volume run trains when ``--model`` is left at its 2D default: the residual U-Net
#: of Kerfoot et al. 2018, in MONAI UNet's cost class (one CPU thread: 0.27 s per step of 4
#: patches of 32x48x32 against unet3d's 4.6 s, docs/models.md "3D models"); ``unet3d`` and
#: nnU-Net's ``resenc_unet3d`` are for GPUs
DEFAULT_VOLUME_MODEL = "resunet3d"
#: sliding-window overlap when scoring volumes (nnU-Net's 0.5)
VOLUME_OVERLAP = 0.5


class VolumeAdapter(SemanticAdapter):
    """Semantic segmentation of volumes (module docstring)."""

    @property
    def model_args(self) -> dict[str, Any]:
        args = super().model_args
        options = dict(args["options"])
        if options.get("spacing") is None and "spacing" not in self.config.model.options:
            options["spacing"] = list(self.info.spacing)
        return {**args, "options": options}

    @property
    def data_derived(self) -> str | None:
        d, info = self.config.data, self.info
        return (f"patch={'x'.join(map(str, d.patch_size))} "
                f"foreground_fraction={d.foreground_fraction:.2f} "
                f"normalization={info.normalization.value} "
                f"spacing={'x'.join(f'{v:g}' for v in info.spacing)} mm; "
                f"augment: {_AUGMENT_LINES[d.volume_augment]} (--volume-augment "
                f"{d.volume_augment.value}, docs/volumes.md)")

    def train_transform(self, data_cfg: DataConfig) -> Any:
        from segwise.data.volume_augment import VolumeAugment

        preset = data_cfg.volume_augment
        if preset is VolumeAugmentPreset.NONE:
            return None
        full = preset is VolumeAugmentPreset.NNUNET
        spacing = self.info.spacing
        in_plane = len(spacing) == 3 and abs(spacing[1] - spacing[2]) <= 1e-3 * spacing[1]
        return VolumeAugment(tuple(data_cfg.patch_size), flips=data_cfg.hflip,
                             rotate_in_plane=full and in_plane,
                             scale=(0.7, 1.4) if full else None, intensity=full,
                             pad_value=self.info.labels.pad_value)

    def datasets(self, index: Any, data_cfg: DataConfig) -> tuple[Any, Any]:
        from segwise.data.volume_dataset import VolumeDataset, VolumePatchDataset

        train = VolumePatchDataset(index.train, self.info, patch_size=data_cfg.patch_size,
                                   foreground_fraction=data_cfg.foreground_fraction,
                                   augment=self.train_transform(data_cfg))
        return train, VolumeDataset(index.val, self.info, resample=True)

    def validate(self, model: nn.Module, val_ds: Any, *, indices: list[int], distributed: bool,
                 keep_overlays: int) -> ValidationResult:
        from segwise.engine.evaluation import evaluate_model

        result = evaluate_model(
            model, val_ds, labels=self.info.labels, device=self.device,
            amp_dtype=self.amp_dtype, channels_last=False,
            tile_size=tuple(self.config.data.patch_size), overlap=VOLUME_OVERLAP,
            keep_overlays=keep_overlays, indices=indices, distributed=distributed,
            loss_fn=self.loss_fn)
        census = {"pixels_per_class": result.matrix.sum(axis=0).tolist(),
                  "true_pixels_per_class": result.matrix.sum(axis=1).tolist()}
        return ValidationResult(result.summary(), loss=result.loss, census=census,
                                overlays=result.overlays)
