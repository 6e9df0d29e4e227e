"""One predictor layer for semantic and instance models, behind one small protocol.

:class:`Predictor` is what ``segwise predict``, ``segwise evaluate`` and library users call::

    from segwise.inference import load_predictor
    predictor = load_predictor("runs/exp1/best.pt", device="cpu")
    [pred] = predictor.predict("scan.png")        # or a numpy (H, W, C) image, a tensor, a list
    pred.labels, pred.probabilities               # semantic: (H, W) int64, (K, H, W) float32

- :class:`SemanticPredictor` (checkpoint or ONNX file) returns :class:`SemanticPrediction`;
- :class:`InstancePredictor` (instance checkpoints) returns
  :class:`~segwise.instance.InstancePrediction` (decoded with
  :func:`segwise.instance.methods.predict_image`, as validation did), and
  :class:`~segwise.inference.onnx_instance.OnnxInstancePredictor` the same from an instance
  ONNX export (YOLACT, SOLOv2: decoding in the graph);
- :class:`~segwise.inference.volume_predictor.VolumePredictor` (runs trained on volumes,
  ``DataInfo.spatial_dims == 3``) returns
  :class:`~segwise.inference.volume_predictor.VolumePrediction` per volume file.

Both take the accepted input forms of :mod:`segwise.inference.inputs`, tiling and test-time
flips through one :class:`~segwise.inferers.options.PredictOptions`, and the classes, colours
and logits-to-labels rule from the checkpoint's :class:`~segwise.labels.LabelSpace`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from segwise.enums import Task
from segwise.inference.inputs import ImageInput, PreparedImage, prepare_images
from segwise.inference.kinds import PredictionKind
from segwise.inferers.options import PredictOptions

__all__ = [
    "InstancePredictor",
    "PredictionKind",
    "Predictor",
    "SemanticPrediction",
    "SemanticPredictor",
    "checkpoint_spatial_dims",
    "is_instance_checkpoint",
    "is_instance_onnx",
    "load_onnx_predictor",
    "load_predictor",
    "onnx_data_info",
    "onnx_spatial_dims",
    "predictor_from_run",
    "write_label_png",
]


@dataclass(frozen=True, eq=False)
class SemanticPrediction:
    """A semantic model's output for one image.

    Attributes:
        labels: ``int64 (H, W)`` class indices, by the label space's rule
            (:meth:`segwise.labels.LabelSpace.logits_to_labels`: argmax; binary: foreground
            where p > 0.5); with test-time flips, the argmax of the averaged probabilities.
        probabilities: ``float32 (K, H, W)`` class probabilities, softmax over the classes
            (binary: ``K = 2``, background ``1 - p`` and foreground ``p = sigmoid(logit)``).
    """

    labels: np.ndarray
    probabilities: np.ndarray


@runtime_checkable
class Predictor(Protocol):
    """The one predictor protocol.

    Attributes:
        kind: what :meth:`predict` returns (:class:`PredictionKind`).
        info: the training data's :class:`~segwise.data.DataInfo` (channels, normalisation).
        label_space: the :class:`~segwise.labels.LabelSpace` (classes, colours, ignore label).
        options: the :class:`~segwise.inferers.options.PredictOptions` in use.
    """

    kind: PredictionKind
    info: Any
    label_space: Any
    options: PredictOptions

    def predict(self, images: ImageInput) -> list[Any]:
        """One prediction per image, in input order (forms: :mod:`segwise.inference.inputs`)."""
        ...


def write_label_png(
    path: str | Path, labels: np.ndarray, palette: Sequence[tuple[int, int, int]]
) -> Path:
    """Write a class-index map as a palette PNG (16-bit greyscale above 256 classes).

    Args:
        path: output file.
        labels: ``(H, W)`` integer class map.
        palette: one RGB colour per class (used for the PNG palette).
    """
    from PIL import Image

    path = Path(path)
    if labels.max(initial=0) < 256 and len(palette) <= 256:
        img = Image.fromarray(labels.astype(np.uint8), mode="P")
        flat = [v for colour in palette for v in colour]
        img.putpalette(flat + [0] * (768 - len(flat)))
    else:
        img = Image.fromarray(labels.astype(np.uint16))
    img.save(path)
    return path


#: ``(prepared image) -> (probabilities (K, H, W), labels (H, W) or None: argmax of them)``
SemanticForward = Callable[[PreparedImage], tuple[np.ndarray, "np.ndarray | None"]]


class SemanticPredictor:
    """Class probabilities and label maps from a semantic checkpoint or ONNX file.

    Build it with :meth:`from_checkpoint`, :meth:`from_onnx` or :func:`load_predictor`.

    Args:
        forward: :data:`SemanticForward`, the model run on one prepared image.
        info: the training data's ``DataInfo`` (binary or multiclass; multilabel is refused).
        options: the :class:`PredictOptions` the forward was built with (for reference).
    """

    kind = PredictionKind.SEMANTIC

    def __init__(self, forward: SemanticForward, info: Any, *, options: PredictOptions) -> None:
        if info.spatial_dims != 2:
            raise ValueError("this model was trained on volumes (spatial_dims=3); predict with "
                             "segwise.inference.load_predictor, which gives a VolumePredictor")
        if info.labels.task is Task.MULTILABEL:
            raise ValueError(
                "a multilabel model has no single label per pixel, so it has no label map; "
                "run the model itself (sigmoid per channel) or export it with "
                "`segwise export --head probabilities`"
            )
        self._forward = forward
        self.info = info
        self.label_space = info.labels
        self.options = options

    def predict(self, images: ImageInput) -> list[SemanticPrediction]:
        """:class:`SemanticPrediction` per image (input forms: :mod:`segwise.inference.inputs`).

        Raises:
            ValueError: the model produced NaN/Inf for an image (naming it).
        """
        out = []
        for image in prepare_images(images, self.info):
            probs, labels = self._forward(image)
            if not np.isfinite(probs).all():
                raise ValueError(f"{image.source or image.name}: the model produced NaN/Inf; "
                                 "the checkpoint may be broken")
            if labels is None:
                labels = probs.argmax(axis=0)
            out.append(SemanticPrediction(labels.astype(np.int64), probs))
        return out

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "auto",
                        options: PredictOptions | None = None) -> SemanticPredictor:
        """From ``RUN/best.pt`` (a semantic checkpoint; instance ones: :func:`load_predictor`)."""
        from segwise.runs.checkpoint import load_run

        return cls.from_run(load_run(path, device=device), options=options)

    @classmethod
    def from_run(cls, loaded: Any, *, options: PredictOptions | None = None) -> SemanticPredictor:
        """From an already loaded :class:`~segwise.runs.checkpoint.LoadedRun`."""
        options = _resolved(options, loaded)
        forward = _torch_forward(loaded.model, loaded.info.labels, loaded.device, options)
        return cls(forward, loaded.info, options=options)

    @classmethod
    def from_onnx(cls, path: str | Path, *, options: PredictOptions | None = None,
                  threads: int | None = None) -> SemanticPredictor:
        """From an ONNX file written by ``segwise export`` (logits or probabilities head).

        The graph runs whole images (no tiling) and no test-time flips.

        Raises:
            ValueError: the file lacks segwise metadata, has the labels head, or ``options``
                ask for tiling or flips.
        """
        from segwise.inference.onnx_predictor import OnnxPredictor

        options = options or PredictOptions()
        if options.flips or options.tile_size is not None:
            raise ValueError(f"{path}: ONNX prediction runs whole images without flips; drop "
                             "tile_size/flips (--tile-size/--tta) or predict with --checkpoint")
        session = OnnxPredictor(path, threads=threads)
        return cls(_onnx_forward(session), onnx_data_info(session), options=options)


def onnx_data_info(session: Any) -> Any:
    """The ``DataInfo`` an ONNX file from ``segwise export`` records (``segwise.data_info``
    with the file's label space; :func:`~segwise.inference.metadata.data_info_from_metadata`).

    Raises:
        ValueError: the file lacks that metadata (an export by the library functions).
    """
    from segwise.inference.metadata import data_info_from_metadata

    props = session.session.get_modelmeta().custom_metadata_map
    return data_info_from_metadata(props, path=session.path)


def _resolved(options: PredictOptions | None, loaded: Any) -> PredictOptions:
    """``options`` with the tile size filled in from the training crop when unset."""
    import dataclasses

    from segwise.inferers.tiling import default_tile_size

    options = options or PredictOptions()
    if options.tile_size is None:
        crop = loaded.config.get("data", {}).get("crop_size")
        options = dataclasses.replace(options, tile_size=default_tile_size(crop))
    return options


def _onnx_forward(session: Any) -> SemanticForward:
    from segwise.inferers.options import ExportHead

    if session.head == ExportHead.LABELS:
        raise ValueError(
            f"{session.path} was exported with --head labels; prediction needs probabilities: "
            "export with --head probabilities (the default) or logits"
        )
    raw_pixels = session.mean is not None  # normalisation baked into the graph

    def forward(image: PreparedImage) -> tuple[np.ndarray, None]:
        x = image.unit if raw_pixels else image.normalized
        # the label space's rule, in numpy (binary: [1 - p, p])
        probs = session.predict_probabilities(np.ascontiguousarray(x[None], dtype=np.float32))
        return probs[0].astype(np.float32, copy=False), None

    return forward


def _torch_forward(model: Any, label_space: Any, device: Any,
                   options: PredictOptions) -> SemanticForward:
    import torch

    from segwise.inference import tta_inference
    from segwise.inferers.forward import forward_logits
    from segwise.inferers.options import Activation

    model.eval()
    to_probs = label_space.probabilities  # (N, num_classes, H, W); binary [1 - p, p]

    def logits_of(x: torch.Tensor) -> torch.Tensor:  # (N, K, H, W) float32, tiled when large
        return forward_logits(model, x, tile_size=options.tile_size, overlap=options.overlap)

    @torch.no_grad()
    def forward(image: PreparedImage) -> tuple[np.ndarray, np.ndarray | None]:
        x = torch.from_numpy(np.ascontiguousarray(image.normalized[None])).to(device)
        if not options.flips:
            logits = logits_of(x)
            labels = label_space.logits_to_labels(logits)[0].cpu().numpy()
            return to_probs(logits)[0].cpu().numpy(), labels
        # every subset of the flips, averaged as probabilities (argmax of the mean: labels)
        probs = tta_inference(lambda t: to_probs(logits_of(t)), x, flips=options.flips,
                              activation=Activation.NONE)
        return probs[0].float().cpu().numpy(), None

    return forward


class InstancePredictor:
    """Instances from an instance checkpoint (Mask R-CNN, U-Net + watershed).

    The model rebuilt from the checkpoint's ``model_args`` decodes itself with its stored
    options (``model.predict``, through :func:`segwise.instance.methods.predict_image`, the
    function validation uses).

    Args:
        loaded: a :class:`~segwise.runs.checkpoint.LoadedRun` of an instance model.
        options: the tile size (methods that tile); flips and another overlap than the
            default are refused (not defined for instances / fixed by the method).
    """

    kind = PredictionKind.INSTANCE

    def __init__(self, loaded: Any, *, options: PredictOptions | None = None) -> None:
        options = _resolved(options, loaded)
        if options.flips:
            raise ValueError(f"{loaded.checkpoint}: test-time flips (--tta) are not defined for "
                             "instance models; predict without them")
        if options.overlap != PredictOptions().overlap:
            raise ValueError(f"{loaded.checkpoint}: overlap={options.overlap} cannot be set for "
                             f"instance models (their tiles overlap by {PredictOptions().overlap}"
                             "); leave --overlap at its default")
        self._loaded = loaded
        self.info = loaded.info
        self.label_space = loaded.info.labels
        self.options = options

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "auto",
                        options: PredictOptions | None = None) -> InstancePredictor:
        """From ``RUN/best.pt`` of ``segwise train --task instance``."""
        from segwise.runs.checkpoint import load_run

        return cls(load_run(path, device=device), options=options)

    def predict(self, images: ImageInput) -> list[Any]:
        """An :class:`~segwise.instance.InstancePrediction` ``(H, W)`` per image."""
        import torch

        from segwise.instance.methods import predict_image

        run = self._loaded
        return [
            predict_image(run.model, torch.from_numpy(image.normalized), device=run.device,
                          tile_size=self.options.tile_size)
            for image in prepare_images(images, self.info)
        ]


def _is_instance_args(model_args: dict[str, Any]) -> bool:
    from segwise.runs.builders import INSTANCE_KINDS

    return dict(model_args or {}).get("kind") in INSTANCE_KINDS


def is_instance_checkpoint(path: str | Path | None) -> bool:
    """Whether ``path`` is a checkpoint of an instance model (cheap: weights are not read).

    Anything unreadable gives False, so that loading reports its own errors.
    """
    import torch

    if path is None or not Path(path).is_file():
        return False
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return _is_instance_args(ckpt.get("model_args") or {})
    except Exception:  # not ours to diagnose here
        return False


def checkpoint_spatial_dims(path: str | Path | None) -> int:
    """2 or 3: the ``spatial_dims`` of the data a checkpoint was trained on (cheap: weights are
    not read). 2 for anything unreadable, so that loading reports its own errors."""
    import torch

    if path is None or not Path(path).is_file():
        return 2
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int((ckpt.get("data_info") or {}).get("spatial_dims", 2))
    except Exception:  # not ours to diagnose here
        return 2


def predictor_from_run(loaded: Any, *, options: Any = None) -> Predictor:
    """The predictor of a loaded run: runs trained on volumes -> :class:`~segwise.inference.
    volume_predictor.VolumePredictor` (``options``: ``VolumeOptions``), instance models ->
    :class:`InstancePredictor`, else :class:`SemanticPredictor`."""
    if loaded.info.spatial_dims == 3:
        from segwise.inference.volume_predictor import VolumePredictor

        return VolumePredictor.from_run(loaded, options=options)
    if _is_instance_args(loaded.model_args):
        return InstancePredictor(loaded, options=options)
    return SemanticPredictor.from_run(loaded, options=options)


def load_predictor(checkpoint: str | Path, *, device: str = "auto",
                   options: Any = None) -> Predictor:
    """The predictor of a checkpoint, semantic, instance or volume (chosen by its run).

    Args:
        checkpoint: ``RUN/best.pt`` (or ``last.pt``).
        device: ``auto``, ``cpu`` or ``cuda``.
        options: tiling and test-time flips; default :class:`PredictOptions` with the tile
            from the training crop. For a run trained on volumes a
            :class:`~segwise.inferers.options.VolumeOptions` (default: the training patch,
            overlap 0.5, no flips).
    """
    from segwise.runs.checkpoint import load_run

    return predictor_from_run(load_run(checkpoint, device=device), options=options)


def load_onnx_predictor(path: str | Path, *, options: Any = None,
                        threads: int | None = None) -> Predictor:
    """The predictor of an ONNX file from ``segwise export``: ``SemanticPredictor.from_onnx``,
    for the export of a run trained on volumes ``VolumePredictor.from_onnx`` (``options``:
    ``VolumeOptions``; the patch defaults to the one the file records), for an instance export
    :class:`~segwise.inference.onnx_instance.OnnxInstancePredictor`."""
    if is_instance_onnx(path):
        from segwise.inference.onnx_instance import OnnxInstancePredictor

        return OnnxInstancePredictor(path, options=options, threads=threads)
    if onnx_spatial_dims(path) == 3:
        from segwise.inference.metadata import PATCH_SIZE_KEY
        from segwise.inference.onnx_predictor import OnnxPredictor
        from segwise.inference.volume_predictor import VolumePredictor

        session = OnnxPredictor(path, threads=threads)
        props = session.session.get_modelmeta().custom_metadata_map
        patch = json.loads(props[PATCH_SIZE_KEY]) if PATCH_SIZE_KEY in props else None
        return VolumePredictor.from_onnx(session, onnx_data_info(session),
                                         options=options, patch_size=patch)
    return SemanticPredictor.from_onnx(path, options=options, threads=threads)


def onnx_spatial_dims(path: str | Path) -> int:
    """2 or 3: the ``spatial_dims`` of the run an ONNX file was exported from (cheap: the
    metadata alone). 2 for files without ``segwise.data_info`` and for files that cannot be
    read (loading reports those)."""
    from segwise.inference.metadata import DATA_INFO_KEY

    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        return int(json.loads(props.get(DATA_INFO_KEY, "{}")).get("spatial_dims", 2))
    except Exception:  # not ours to diagnose here
        return 2


def is_instance_onnx(path: str | Path | None) -> bool:
    """Whether ``path`` is an instance export of ``segwise export`` (``segwise.kind =
    instance``; cheap: the metadata alone). False for anything unreadable, so that loading
    reports its own errors."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return any(p.key == "segwise.kind" and p.value == "instance"
                   for p in model.metadata_props)
    except Exception:  # not ours to diagnose here
        return False
