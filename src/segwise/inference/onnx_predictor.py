"""Predict with an exported ONNX file using only NumPy and onnxruntime (no torch, no model code).

This module must stay importable without PyTorch: it imports only numpy, onnxruntime and the
torch-free option enums. A deployment ships the ``.onnx`` file written by
:func:`segwise.inference.export_onnx` and this predictor.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from segwise.inferers.options import ExportHead

__all__ = ["OnnxPredictor"]


class OnnxPredictor:
    """Run an ONNX segmentation model written by :func:`~segwise.inference.export_onnx`.

    The file's metadata says whether normalisation and which head (logits / probabilities /
    labels) are baked in; :meth:`predict_labels` turns any head into a label map.

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers (default: CPU only).
        threads: intra-op threads for onnxruntime (default: its own choice).

    Attributes:
        head: the baked-in :class:`~segwise.inference.ExportHead`.
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        in_channels: ``C`` the model expects.
        mean, std: the baked-in normalisation (lists), or ``None`` when the caller must normalise.
    """

    def __init__(
        self, path: str | Path, *, providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {self.path}")
        if zipfile.is_zipfile(self.path):  # ONNX is a protobuf; .pt2 and TorchScript are zips
            raise ValueError(
                f"{self.path} is a PyTorch archive (torch.export or TorchScript), not ONNX; "
                "`segwise predict --onnx` runs ONNX exports. Run an instance .pt2 with "
                "segwise.inference.load_instance_program(path)(images), or predict with "
                "--checkpoint RUN/best.pt"
            )
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
        )
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get("segwise.kind") == "instance":
            raise ValueError(
                f"{self.path} is an instance export ({props.get('segwise.method')}: outputs "
                "scores, labels, masks), which OnnxPredictor and `segwise predict --onnx` do not "
                "run; predict with `segwise predict --checkpoint RUN/best.pt`, or run the file "
                "with onnxruntime directly (docs/inference.md, 'Instance models')"
            )
        if "segwise.head" not in props:
            raise ValueError(f"{self.path} has no segwise metadata; export it with export_onnx")
        self.head = ExportHead(props["segwise.head"])
        self.task = props["segwise.task"]
        self.in_channels = int(props["segwise.in_channels"])
        self.mean = json.loads(props["segwise.mean"])
        self.std = json.loads(props["segwise.std"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Run the graph as exported.

        Args:
            images: ``(N, C, H, W)`` or ``(C, H, W)`` float array (raw pixels when the file
                normalises, else already normalised).

        Returns:
            The graph's output, with a leading batch axis: ``(N, K, H, W)`` float32 for logits /
            probabilities, ``(N, H, W)`` int64 for labels (``(N, K, H, W)`` for multilabel).
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"images must be (N, {self.in_channels}, H, W) or ({self.in_channels}, H, W), "
                f"got {images.shape}; for an (H, W, C) image use image.transpose(2, 0, 1)"
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

    def predict_labels(self, images: np.ndarray) -> np.ndarray:
        """Label map(s) whatever head was baked in.

        Args:
            images: as for :meth:`__call__`.

        Returns:
            ``(N, H, W)`` int64 class indices (argmax for multiclass, ``> 0.5`` probability for
            binary); ``(N, K, H, W)`` int64 0/1 for multilabel.
        """
        out = self(images)
        if self.head == ExportHead.LABELS:
            return out.astype(np.int64)
        if self.task == "multiclass":
            return out.argmax(axis=1).astype(np.int64)
        threshold = 0.0 if self.head == ExportHead.LOGITS else 0.5
        labels = (out > threshold).astype(np.int64)
        return labels[:, 0] if self.task == "binary" else labels
