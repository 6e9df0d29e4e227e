"""The predictor of a run trained on volumes (``DataInfo.spatial_dims == 3``).

:func:`~segwise.inference.load_predictor` returns a :class:`VolumePredictor` for such a run::

    predictor = segwise.load_predictor("runs/hippocampus", device="cuda")
    pred = predictor.predict_volume("imagesTs/case_001.nii.gz")
    pred.labels                     # (X, Y, Z) int64, the file's voxel order
    write_labels("case_001.nii.gz", pred.labels, like=pred.volume)   # overlays the scan

One volume at a time:

1. read with :func:`segwise.data.volumes.read_volume` (NIfTI, NRRD, MetaImage, DICOM
   series), channels first ``(C, D, H, W)``
   (:func:`~segwise.data.volume_norm.channels_first`: the file's ``(i, j, k)`` is the model's
   ``(D, H, W)``; nothing is reoriented), normalised by the run's own rule and numbers
   (:func:`~segwise.data.volume_norm.normalize_volume` with ``DataInfo.normalization``,
   ``mean``, ``std``, ``clip``), as training did;
2. when the input's voxel size differs from the run's (``DataInfo.spacing``) by more than 1 %
   (:func:`~segwise.data.resample.needs_resampling`), the normalised volume is resampled to
   the run's spacing, trilinear (:mod:`segwise.data.resample`), as training volumes were. The
   input's spacing is a :class:`~segwise.data.volumes.Volume`'s own (files are read as
   volumes), or the ``spacing=`` given; an array or tensor without ``spacing=`` is taken to be
   on the run's spacing already;
3. the model over sliding windows of the training patch, overlap 0.5, patches batched
   (:func:`segwise.inferers.sliding_window_inference`): each patch's class probabilities (the
   label space's rule, :meth:`~segwise.labels.LabelSpace.probabilities`: softmax; binary
   ``[1 - p, p]``) are blended with Gaussian weights, so a checkpoint and its ONNX export
   (probabilities head) blend the same values; a volume smaller than the patch along an axis
   is padded to it and cropped back;
4. with flips (``--tta``), every flip of the three axes (8 passes) averaged as class
   probabilities (:func:`segwise.inferers.tta_inference`);
5. a resampled volume's probabilities are resampled back to the input's shape (trilinear,
   :func:`~segwise.data.resample.resample_probabilities`), so probabilities and labels are
   always on the input's grid and a written label volume keeps the input's affine;
6. labels: the argmax of the probabilities (binary: ``p > 0.5``).

Connected-component clean-up is :func:`segwise.inferers.keep_largest_component` with
``spatial_dims=3`` (``segwise predict --largest-component``), kept out of the predictor as for
images, so labels and probabilities always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segwise.enums import Task
from segwise.inference.kinds import PredictionKind
from segwise.inferers.options import VolumeOptions

__all__ = ["VolumeInput", "VolumePrediction", "VolumePredictor"]

#: What :meth:`VolumePredictor.predict_volume` accepts: a volume file or DICOM series folder
#: (:data:`segwise.data.volumes.VOLUME_SUFFIXES`), a :class:`~segwise.data.volumes.Volume`, a
#: numpy ``(X, Y, Z)`` / ``(X, Y, Z, C)`` array of raw intensities (normalised here, by the
#: run's rule), or a torch tensor ``(C, D, H, W)`` already normalised (a dataset item's
#: ``"image"``).
VolumeInput = str | Path | Any | np.ndarray


@dataclass(frozen=True, eq=False)
class VolumePrediction:
    """A 3D model's output for one volume.

    Attributes:
        name: the file's ID (:func:`segwise.data.volumes.volume_id`: the name without its
            suffix), or ``volume_<i>`` for arrays and tensors.
        labels: ``int64 (X, Y, Z)`` class indices on the input's grid (its shape and voxel
            order, also when the model ran on the run's spacing), by the label space's rule;
            with flips, the argmax of the averaged probabilities.
        probabilities: ``float32 (K, X, Y, Z)`` class probabilities on the input's grid when
            asked for, else ``None``.
        volume: the :class:`~segwise.data.volumes.Volume` read (its affine and header, for
            :func:`~segwise.data.volumes.write_labels`), or ``None`` for arrays and tensors.
    """

    name: str
    labels: np.ndarray
    probabilities: np.ndarray | None
    volume: Any


#: ``(B, C, d, h, w)`` float tensor -> ``(B, K, d, h, w)`` scores (logits or probabilities)
VolumeModel = Callable[[Any], Any]


class VolumePredictor:
    """Label volumes from a run trained on volumes (module docstring: the steps).

    Build it with :meth:`from_run`, :meth:`from_onnx` or :func:`~segwise.inference.load_predictor`.

    Args:
        model: :data:`VolumeModel`, run on patches on ``device``.
        info: the training data's :class:`~segwise.data.DataInfo` (``spatial_dims == 3``; binary
            or multiclass, multilabel is refused).
        options: :class:`~segwise.inferers.options.VolumeOptions` with ``patch_size`` set.
        device: where the patches run (``torch.device``); the volume and the blended output
            stay on the CPU.
        from_logits: whether ``model`` returns logits (else class probabilities, e.g. an ONNX
            export with the probabilities head).
        source: the checkpoint or file it came from (named in messages).
        channels_last: feed patches in channels-last layout (fast on GPUs; off for ONNX).

    Attributes:
        kind: :attr:`PredictionKind.SEMANTIC`: class indices and probabilities per voxel.
        info, label_space, options: as for the other predictors.
    """

    kind = PredictionKind.SEMANTIC

    def __init__(self, model: VolumeModel, info: Any, *, options: VolumeOptions, device: Any,
                 from_logits: bool = True, source: str | Path = "",
                 channels_last: bool = True) -> None:
        if info.spatial_dims != 3:
            raise ValueError(f"{source}: the run predicts 2D images (spatial_dims="
                             f"{info.spatial_dims}), not volumes; use SemanticPredictor")
        if info.labels.task is Task.MULTILABEL:
            raise ValueError(f"{source}: a multilabel model has no single label per voxel, so "
                             "it has no label volume; run the model itself (sigmoid per channel)")
        if options.patch_size is None:
            raise ValueError(f"{source}: no patch size; pass VolumeOptions(patch_size=(D, H, W)) "
                             "(--tile-size DxHxW)")
        if from_logits:  # blend class probabilities, by the label space's rule
            probabilities = info.labels.probabilities

            def scores(tiles: Any) -> Any:
                return probabilities(model(tiles).float())
        else:
            scores = model
        self._probabilities = scores  # (B, C, d, h, w) -> (B, K, d, h, w) probabilities
        self._device = device
        self._channels_last = channels_last
        self.source = str(source)
        self.info = info
        self.label_space = info.labels
        self.options = options

    @classmethod
    def from_run(cls, loaded: Any, *, options: Any = None) -> VolumePredictor:
        """From a loaded 3D run (:class:`~segwise.runs.checkpoint.LoadedRun`); the patch defaults
        to the run's ``data.patch_size``.

        ``options``: :class:`~segwise.inferers.options.VolumeOptions`, or the 2D
        :class:`~segwise.inferers.options.PredictOptions` (what ``segwise evaluate`` passes),
        read as volume options: a tile side as a cubic patch, the flips as given, the overlap
        as given unless it is the 2D default (0.25), which volumes replace with 0.5.
        """
        options = _with_run_patch(options, loaded.config, loaded.checkpoint)
        model = loaded.model.eval()
        return cls(_autocast(model, options.amp_dtype, loaded.device), loaded.info,
                   options=options, device=loaded.device, source=loaded.checkpoint)

    @classmethod
    def from_onnx(cls, session: Any, info: Any, *, options: VolumeOptions | None = None,
                  patch_size: Sequence[int] | None = None) -> VolumePredictor:
        """From an :class:`~segwise.inference.OnnxPredictor` of a 3D export (``segwise export``
        of a 3D run: no normalisation in the graph, dynamic ``D, H, W``).

        Args:
            session: the opened file.
            info: its ``DataInfo`` (the file's ``segwise.data_info`` and ``segwise.labels``).
            options: as for :meth:`from_run`; ``amp_dtype`` is refused (onnxruntime, CPU).
            patch_size: the patch the file records (``segwise.patch_size``), the default of
                ``options.patch_size``.
        """
        import dataclasses

        import torch

        from segwise.inferers.options import ExportHead

        options = options or VolumeOptions()
        if options.amp_dtype is not None:
            raise ValueError(f"{session.path}: ONNX files run in float32 on the CPU; drop "
                             "amp_dtype (--amp)")
        if options.patch_size is None and patch_size is not None:
            options = dataclasses.replace(options, patch_size=tuple(int(v) for v in patch_size))
        if session.head == ExportHead.LABELS:
            raise ValueError(f"{session.path} was exported with --head labels; prediction needs "
                             "scores: export with --head probabilities (the default) or logits")
        if session.mean is not None:
            raise ValueError(f"{session.path} has a normalisation baked in, which a volume's "
                             "rule (z-score, CT window) is not; export the run again with "
                             "segwise export")

        def run(tiles: torch.Tensor) -> torch.Tensor:
            scores = session(np.ascontiguousarray(tiles.detach().cpu().numpy()))
            return torch.from_numpy(np.asarray(scores, dtype=np.float32))

        return cls(run, info, options=options, device=torch.device("cpu"),
                   from_logits=session.head == ExportHead.LOGITS, source=session.path,
                   channels_last=False)

    def predict(self, volumes: VolumeInput | Sequence[VolumeInput], *,
                probabilities: bool = False,
                spacing: Sequence[float] | None = None) -> list[VolumePrediction]:
        """:meth:`predict_volume` for one input or each of a list, in order (a tensor ``(N, C,
        D, H, W)`` gives one prediction per volume); ``spacing``, when given, is every
        input's."""
        if _is_tensor(volumes) and volumes.ndim == 5:
            volumes = list(volumes)
        items = list(volumes) if isinstance(volumes, (list, tuple)) else [volumes]
        if not items:
            raise ValueError("no volumes given; pass a path, a Volume, an array or a list")
        return [self.predict_volume(v, probabilities=probabilities, name=f"volume_{i}",
                                    spacing=spacing)
                for i, v in enumerate(items)]

    def predict_volume(self, volume: VolumeInput, *, probabilities: bool = False,
                       name: str = "volume_0",
                       spacing: Sequence[float] | None = None) -> VolumePrediction:
        """Labels (and optionally probabilities) for one volume.

        Args:
            volume: :data:`VolumeInput`: a volume file (``.nii.gz``, ``.nrrd``, ...) or DICOM
                series folder, a :class:`~segwise.data.volumes.Volume`, a numpy ``(X, Y, Z)``
                / ``(X, Y, Z, C)`` array of raw intensities, or a normalised torch tensor
                ``(C, D, H, W)``.
            probabilities: also return the ``(K, X, Y, Z)`` float32 class probabilities.
            name: the prediction's name for an array input.
            spacing: the input's voxel size ``(sd, sh, sw)`` in mm (e.g. a dataset item's
                ``"spacing"``); None: a :class:`~segwise.data.volumes.Volume`'s (or file's)
                own, and for an array or tensor the run's (no resampling). A volume off the
                run's spacing by more than 1 % is predicted on the run's grid and its
                probabilities brought back (module docstring, steps 2 and 5).

        Returns:
            labels and probabilities on the input's grid, whatever grid the model ran on.

        Raises:
            ValueError: not a volume file, channels other than the run's, a spacing that is
                not three sizes > 0, or NaN/Inf from the model (each naming the input).
        """
        import torch

        from segwise.data.resample import (
            needs_resampling,
            resample_image,
            resample_probabilities,
            target_shape,
        )

        read, name = self._read(volume, name)
        if _is_tensor(read):
            x = self._checked_tensor(read, name)
        else:
            x = torch.from_numpy(self._normalised(read, name))[None]  # (1, C, D, H, W)
        own = self._spacing(read, spacing, name)
        shape = tuple(x.shape[2:])  # the input's grid
        resampled = own is not None and needs_resampling(own, self.info.spacing)
        if resampled:  # to the run's grid (1, C, D', H', W')
            x = resample_image(x[0], target_shape(shape, own, self.info.spacing))[None]
        probs = self._scores(x)  # (1, K, *x's grid)
        if not torch.isfinite(probs).all():
            raise ValueError(f"{name}: the model produced NaN/Inf; the checkpoint may be broken")
        if resampled:  # back to the input's grid (1, K, D, H, W)
            probs = resample_probabilities(probs[0], shape)[None]
        labels = probs.argmax(dim=1)  # binary [1 - p, p]: p > 0.5
        return VolumePrediction(
            name=name,
            labels=labels[0].numpy().astype(np.int64, copy=False),
            probabilities=probs[0].numpy().astype(np.float32, copy=False) if probabilities
            else None,
            volume=read if _is_volume(read) else None,
        )

    def _read(self, volume: VolumeInput, name: str) -> tuple[Any, str]:
        """The input as a ``Volume`` (paths, volumes), an array or a tensor, and its name."""
        from segwise.data.volumes import VOLUME_SUFFIXES, read_volume, volume_id

        if isinstance(volume, (str, Path)):
            path = Path(volume)
            if not path.is_dir() and not path.name.lower().endswith(VOLUME_SUFFIXES):
                raise ValueError(
                    f"{path} is not a volume ({', '.join(VOLUME_SUFFIXES)}, or a DICOM series "
                    f"folder); the run {self.source} was trained on volumes and predicts "
                    "volumes only"
                )
            return read_volume(path), volume_id(path)
        if _is_volume(volume):
            return volume, volume_id(volume.path) if volume.path is not None else name
        if isinstance(volume, np.ndarray) or _is_tensor(volume):
            return volume, name
        raise TypeError(f"{name}: {type(volume).__name__} is not a volume; pass a volume path, "
                        "a segwise.data.volumes.Volume, a numpy (X, Y, Z[, C]) array or a "
                        "normalised torch tensor (C, D, H, W)")

    def _spacing(self, read: Any, spacing: Sequence[float] | None,
                 name: str) -> tuple[float, ...] | None:
        """The input's voxel size: ``spacing`` when given, else a ``Volume``'s, else None (an
        array or tensor: taken to be on the run's spacing)."""
        if spacing is None:
            return tuple(float(v) for v in read.spacing) if _is_volume(read) else None
        try:
            values = tuple(float(v) for v in spacing)
        except (TypeError, ValueError):
            values = ()
        if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"{name}: spacing={spacing!r} is not valid; expected three voxel "
                             "sizes (D, H, W) in mm, each > 0")
        return values

    def _checked_tensor(self, tensor: Any, name: str) -> Any:
        """A normalised ``(C, D, H, W)`` tensor as a float32 CPU batch ``(1, C, D, H, W)``."""
        c = self.info.in_channels
        if tensor.ndim != 4 or tensor.shape[0] != c or not tensor.is_floating_point():
            raise ValueError(
                f"{name}: a tensor must be a normalised float volume (C, D, H, W) with C = {c}, "
                f"got {tuple(tensor.shape)} {tensor.dtype}; pass raw intensities as a numpy "
                "(X, Y, Z[, C]) array instead"
            )
        return tensor.detach().float().cpu()[None]

    def _normalised(self, read: Any, name: str) -> np.ndarray:
        """``(C, D, H, W)`` float32 by the run's rule; refuses another channel count."""
        from segwise.data.volume_norm import channels_first, normalize_volume

        array = read.array if _is_volume(read) else read
        where = read.path if _is_volume(read) and read.path is not None else name
        try:
            image = channels_first(array)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        expected = self.info.in_channels
        if image.shape[0] != expected:
            raise ValueError(
                f"{where}: has {image.shape[0]} channel(s) (array shape {tuple(array.shape)}); "
                f"the run {self.source} was trained on {expected}-channel volumes: pass volumes "
                f"with {expected} channel(s) ((X, Y, Z) for one, (X, Y, Z, C) for several)"
            )
        info = self.info
        return normalize_volume(image, info.normalization, mean=info.mean, std=info.std,
                                clip=info.clip)

    def _scores(self, x: Any) -> Any:
        """``x (1, C, D, H, W)`` -> probabilities ``(1, K, D, H, W)`` on the CPU."""
        from segwise.inferers import sliding_window_inference, tta_inference
        from segwise.inferers.options import Activation, Blend

        options = self.options

        def window(v: Any) -> Any:  # blended probabilities (1, K, D, H, W) on the CPU
            return sliding_window_inference(
                self._probabilities, v, tile_size=options.patch_size, overlap=options.overlap,
                tile_batch_size=options.tile_batch_size, blend=Blend.GAUSSIAN,
                tile_device=self._device, output_device="cpu",
                channels_last=self._channels_last,
            )

        # with flips: every subset of them, averaged as probabilities
        return (tta_inference(window, x, flips=options.flips, activation=Activation.NONE)
                if options.flips else window(x))


def _is_volume(value: Any) -> bool:
    from segwise.data.volumes import Volume

    return isinstance(value, Volume)


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _autocast(model: Any, amp_dtype: Any, device: Any) -> VolumeModel:
    """``model`` under ``torch.autocast`` of ``amp_dtype`` on ``device``'s type (or as is)."""
    if amp_dtype is None:
        return model
    import torch

    if not isinstance(amp_dtype, torch.dtype) or not amp_dtype.is_floating_point:
        raise ValueError(f"amp_dtype={amp_dtype!r} is not valid; expected torch.bfloat16, "
                         "torch.float16 or None")

    def run(tiles: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=amp_dtype):
            return model(tiles)

    return run


def _with_run_patch(options: Any, config: dict[str, Any], source: Any) -> VolumeOptions:
    """``options`` as :class:`VolumeOptions` (from ``PredictOptions``: see
    :meth:`VolumePredictor.from_run`), the patch filled in from the run's ``data.patch_size``
    when unset."""
    import dataclasses

    from segwise.inferers.options import PredictOptions

    if isinstance(options, PredictOptions):
        tile = options.tile_size
        overlap = options.overlap
        options = VolumeOptions(
            patch_size=None if tile is None else (tile,) * 3, flips=options.flips,
            overlap=VolumeOptions().overlap if overlap == PredictOptions().overlap else overlap,
        )
    options = options or VolumeOptions()
    if not isinstance(options, VolumeOptions):
        raise TypeError(f"options={options!r} is not valid for {source}, a run trained on "
                        "volumes; pass segwise.inference.VolumeOptions")
    if options.patch_size is None:
        patch = (config.get("data") or {}).get("patch_size")
        if not patch:
            raise ValueError(f"{source} records no data.patch_size; pass "
                             "VolumeOptions(patch_size=(D, H, W)) (--tile-size DxHxW)")
        options = dataclasses.replace(options, patch_size=tuple(int(v) for v in patch))
    return options
