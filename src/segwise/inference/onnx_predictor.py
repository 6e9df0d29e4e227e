"""Predict with an exported ONNX file using only NumPy and onnxruntime (no torch, no model code).

This module must stay importable without PyTorch: it imports only numpy, onnxruntime, the
torch-free option enums, the metadata reader and the label rules of :mod:`segwise.labels`
(which take numpy arrays). A deployment ships the ``.onnx`` file written by
:func:`segwise.inference.export_onnx` and this predictor.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from segwise.enums import Task
from segwise.inference.metadata import parse_metadata
from segwise.inferers.options import ExportHead
from segwise.labels import class_probabilities, labels_from_logits

__all__ = ["OnnxPredictor", "open_session"]


class OnnxPredictor:
    """Run an ONNX segmentation model written by :func:`~segwise.inference.export_onnx`.

    The file's metadata says whether normalisation and which head (logits / probabilities /
    labels) are baked in; :meth:`predict_probabilities` and :meth:`predict_labels` turn the
    output into class probabilities and a label map by the label space's rules
    (:func:`segwise.labels.class_probabilities`, :func:`segwise.labels.labels_from_logits`).

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers (default: CPU only).
        threads: intra-op threads for onnxruntime (default: its own choice).

    Attributes:
        head: the baked-in :class:`~segwise.inference.ExportHead`.
        labels: the file's :class:`~segwise.labels.LabelSpace` (classes, colours), or ``None``
            for a file that recorded its task alone (an older library export).
        task: :class:`~segwise.enums.Task` (a ``str`` enum: ``"binary"``, ...), ``labels.task``.
        in_channels: ``C`` the model expects.
        spatial_dims: 2 (images ``(N, C, H, W)``) or 3 (volumes ``(N, C, D, H, W)``), from the
            graph's input.
        mean, std: the baked-in normalisation (lists), or ``None`` when the caller must normalise.
    """

    def __init__(
        self, path: str | Path, *, providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, providers=providers, threads=threads)
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get("segwise.kind") == "instance":
            raise ValueError(
                f"{self.path} is an instance export ({props.get('segwise.method')}: outputs "
                "scores, labels, masks), which OnnxPredictor (semantic masks) does not run; "
                "`segwise predict --onnx` and segwise.inference.load_onnx_predictor run it "
                "(segwise.inference.OnnxInstancePredictor)"
            )
        if "segwise.head" not in props:
            raise ValueError(f"{self.path} has no segwise metadata; export it with export_onnx")
        meta = parse_metadata(props)  # this version's keys or an older file's
        self.head: ExportHead = meta["head"]
        self.labels = meta["labels"]
        self.task: Task = meta["task"]
        self.in_channels: int = meta["in_channels"]
        self.mean, self.std = meta["mean"], meta["std"]
        self.input_name = self.session.get_inputs()[0].name
        # 4 axes (N, C, H, W), or 5 for the export of a 3D model (N, C, D, H, W)
        self.spatial_dims = max(len(self.session.get_inputs()[0].shape) - 2, 2)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Run the graph as exported.

        Args:
            images: ``(N, C, H, W)`` or ``(C, H, W)`` float array (raw pixels when the file
                normalises, else already normalised); for the export of a 3D model ``(N, C,
                D, H, W)`` or ``(C, D, H, W)``.

        Returns:
            The graph's output, with a leading batch axis: ``(N, K, H, W)`` float32 for logits /
            probabilities, ``(N, H, W)`` int64 for labels (``(N, K, H, W)`` for multilabel);
            volumes the same with ``D, H, W``.
        """
        images = np.asarray(images, dtype=np.float32)
        rank = self.spatial_dims + 2  # (N, C, *spatial)
        if images.ndim == rank - 1:
            images = images[None]
        if images.ndim != rank or images.shape[1] != self.in_channels:
            c = self.in_channels
            want = (f"(N, {c}, H, W) or ({c}, H, W)" if rank == 4
                    else f"(N, {c}, D, H, W) or ({c}, D, H, W)")
            raise ValueError(
                f"images must be {want}, got {images.shape}; for an (H, W, C) image use "
                "image.transpose(2, 0, 1)"
            )
        try:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(images)})[0]
        except Exception as err:  # onnxruntime's own exception types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"{self.path}: onnxruntime cannot run it on a {images.shape} input ({first[:300]})"
                "; a file exported before segwise padded inside the graph works only at sizes "
                "like its trace size: export the checkpoint again (`segwise export`)"
            ) from err

    def predict_probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities whatever logits or probabilities head was baked in.

        Args:
            images: as for :meth:`__call__`.

        Returns:
            ``(N, K, H, W)`` float32 by :func:`segwise.labels.class_probabilities`: ``K = 2``
            for binary (``[1 - p, p]``, also from a one-channel probabilities file of an older
            segwise), else one channel per class.

        Raises:
            ValueError: the file has the labels head (no probabilities in it).
        """
        if self.head == ExportHead.LABELS:
            raise ValueError(f"{self.path} was exported with --head labels; it holds no "
                             "probabilities: export with --head probabilities or logits")
        out = self(images)
        if self.head == ExportHead.LOGITS:
            return class_probabilities(out, self.task)
        if self.task is Task.BINARY and out.shape[1] == 1:  # older files: p alone
            return class_probabilities(out, self.task, from_logits=False)
        return out

    def predict_labels(self, images: np.ndarray) -> np.ndarray:
        """Label map(s) whatever head was baked in.

        Args:
            images: as for :meth:`__call__`.

        Returns:
            ``(N, H, W)`` int64 class indices (logits: :func:`segwise.labels.labels_from_logits`,
            argmax for multiclass and ``logit > 0`` for binary; probabilities: their argmax);
            ``(N, K, H, W)`` int64 0/1 for multilabel (probability > 0.5 per class).
        """
        if self.head == ExportHead.LABELS:
            return self(images).astype(np.int64)
        if self.task is Task.MULTILABEL:  # per class: sigmoid(z) > 0.5  <=>  z > 0
            cut = 0.0 if self.head == ExportHead.LOGITS else 0.5
            return (self(images) > cut).astype(np.int64)
        if self.head == ExportHead.LOGITS:
            return labels_from_logits(self(images), self.task)
        return self.predict_probabilities(images).argmax(axis=1).astype(np.int64)


def open_session(path: Path, *, providers: list[str] | None = None,
                 threads: int | None = None) -> Any:
    """An onnxruntime session of a segwise ONNX export (semantic or instance).

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers (default: CPU only).
        threads: intra-op threads (default: onnxruntime's own choice).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is a PyTorch archive (``.pt2`` or TorchScript), not ONNX.
    """
    import onnxruntime as ort

    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    if zipfile.is_zipfile(path):  # ONNX is a protobuf; .pt2 and TorchScript are zips
        raise ValueError(
            f"{path} is a PyTorch archive (torch.export or TorchScript), not ONNX; "
            "`segwise predict --onnx` runs ONNX exports. Run an instance .pt2 with "
            "segwise.inference.load_instance_program(path)(images), or predict with "
            "--checkpoint RUN/best.pt"
        )
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options,
                                providers=providers or ["CPUExecutionProvider"])
