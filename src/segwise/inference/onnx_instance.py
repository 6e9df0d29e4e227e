"""Instances from an instance ONNX export (``segwise export`` of a YOLACT or SOLOv2 checkpoint).

The graph holds the method's decoding and has fixed-size outputs (the contract of
:mod:`segwise.inference.instance_export`): ``scores (N, k)`` descending, ``labels (N, k)``,
``masks (N, k, H, W)`` mask probabilities, zero past the detections. What is left outside the
graph is what the method's ``predict`` does after the same decoding: keep the slots with a
score above 0, binarise the masks at the method's ``mask_threshold`` (read from the options the
file records) and resolve overlaps by score (:meth:`InstancePrediction.from_masks
<segwise.instance.InstancePrediction.from_masks>`). So the file predicts what the checkpoint
predicts, up to onnxruntime's float differences, for every image the checkpoint decodes in one
pass (all of YOLACT's; SOLOv2 decodes images larger than its training crops in tiles, the graph
in one pass: docs/inference.md, "Instance models").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segwise.inference.inputs import ImageInput, prepare_images
from segwise.inference.kinds import PredictionKind
from segwise.inference.metadata import OPTIONS_KEY, data_info_from_metadata, parse_metadata
from segwise.inference.onnx_predictor import open_session
from segwise.inferers.options import PredictOptions
from segwise.instance.representation import InstancePrediction

__all__ = ["OnnxInstancePredictor", "decode_slots"]


def decode_slots(scores: np.ndarray, labels: np.ndarray, masks: np.ndarray, *,
                 mask_threshold: float) -> InstancePrediction:
    """The instances of one image's output slots.

    Args:
        scores: ``(k,)`` float, descending; 0 in empty slots.
        labels: ``(k,)`` int, foreground classes ``1..``; 0 in empty slots.
        masks: ``(k, H, W)`` float mask probabilities.
        mask_threshold: a pixel is in an instance where its probability is above it.

    Returns:
        :class:`~segwise.instance.InstancePrediction` ``(H, W)``: the slots with a score above 0,
        overlaps given to the higher score, IDs ``1..K`` by descending score.
    """
    present = np.asarray(scores) > 0
    if not present.any():
        return InstancePrediction.empty(tuple(int(v) for v in masks.shape[-2:]))
    return InstancePrediction.from_masks(
        np.asarray(masks)[present], labels=np.asarray(labels)[present].astype(np.int64),
        scores=np.clip(np.asarray(scores)[present], 0.0, 1.0), mask_threshold=mask_threshold)


class OnnxInstancePredictor:
    """Run an instance ONNX file written by ``segwise export`` (the :class:`Predictor` of
    ``segwise predict --onnx`` for such files).

    Args:
        path: the ``.onnx`` file.
        options: must ask for no tiling and no flips (the graph runs whole images).
        threads: intra-op threads for onnxruntime (default: its own choice).

    Attributes:
        info: the training data's :class:`~segwise.data.DataInfo` (normalisation, classes).
        label_space: ``info.labels``.
        method: the instance method's registry name.
        max_instances: ``k``, the output slots per image.
        mask_threshold: the method's mask threshold, from the options the file records.
    """

    kind = PredictionKind.INSTANCE

    def __init__(self, path: str | Path, *, options: PredictOptions | None = None,
                 threads: int | None = None) -> None:
        from segwise.instance.methods import get_method, options_from_record

        self.path = Path(path)
        options = options or PredictOptions()
        if options.flips or options.tile_size is not None:
            raise ValueError(f"{self.path}: an instance ONNX export runs whole images without "
                             "flips; drop --tile-size/--tta")
        if options.overlap != PredictOptions().overlap:
            raise ValueError(f"{self.path}: an instance ONNX export runs whole images, so "
                             "--overlap does not apply; drop it")
        self.session = open_session(self.path, threads=threads)
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get("segwise.kind") != "instance":
            raise ValueError(f"{self.path} is not an instance export (no segwise.kind = "
                             "instance); run it with segwise.inference.load_onnx_predictor")
        meta = parse_metadata(props)
        self.info = data_info_from_metadata(props, path=self.path)
        self.label_space = self.info.labels
        self.method: str = meta["method"]
        self.max_instances: int = meta["max_instances"]
        self.in_channels: int = meta["in_channels"]
        self.raw_pixels = meta["mean"] is not None  # normalisation baked into the graph
        record = json.loads(props.get(OPTIONS_KEY, "{}"))
        method_options = options_from_record(get_method(self.method), record)
        self.mask_threshold = float(getattr(method_options, "mask_threshold", 0.5))
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The graph's outputs for ``images (N, C, H, W)`` float32 (raw pixels in [0, 1] when
        the file normalises, else normalised): ``scores (N, k)``, ``labels (N, k)``,
        ``masks (N, k, H, W)``."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"images must be (N, {self.in_channels}, H, W), got {images.shape}")
        try:
            scores, labels, masks = self.session.run(None, {self.input_name: images})
        except Exception as err:  # onnxruntime's own exception types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{self.path}: onnxruntime cannot run it on a {images.shape} input "
                             f"({first[:300]})") from err
        return scores, labels, masks

    def predict(self, images: ImageInput) -> list[InstancePrediction]:
        """An :class:`~segwise.instance.InstancePrediction` ``(H, W)`` per image (any accepted
        input form, :mod:`segwise.inference.inputs`), each image run whole."""
        out = []
        for image in prepare_images(images, self.info):
            x = image.unit if self.raw_pixels else image.normalized
            scores, labels, masks = self(x[None])
            out.append(decode_slots(scores[0], labels[0], masks[0],
                                    mask_threshold=self.mask_threshold))
        return out
