"""Inference: the predictor (semantic, instance and volume, one protocol), sliding-window
prediction, test-time augmentation, post-processing and export.

Importing this package is cheap (names resolve lazily, PEP 562), and
``segwise.inference.onnx_predictor`` never imports torch, so an onnxruntime-only deployment can
use :class:`OnnxPredictor` without PyTorch installed.
"""

from __future__ import annotations

from segwise._lazy import lazy_exports

# public name -> module that defines it
_LAZY = {
    "Activation": "segwise.inferers.options",
    "Blend": "segwise.inferers.options",
    "Connectivity": "segwise.inferers.options",
    "ExportHead": "segwise.inferers.options",
    "Flip": "segwise.inferers.options",
    "Output": "segwise.inferers.options",
    "PadMode": "segwise.inferers.options",
    "LabelPrediction": "segwise.inferers.sliding_window",
    "sliding_window_inference": "segwise.inferers.sliding_window",
    "TileGrid": "segwise.inferers.tiling",
    "importance_map": "segwise.inferers.tiling",
    "tile_grid": "segwise.inferers.tiling",
    "tile_starts": "segwise.inferers.tiling",
    "GeometricTransform": "segwise.inferers.tta",
    "tta_inference": "segwise.inferers.tta",
    "tta_transforms": "segwise.inferers.tta",
    "fill_holes": "segwise.inferers.postprocess",
    "keep_largest_component": "segwise.inferers.postprocess",
    "remove_small_objects": "segwise.inferers.postprocess",
    "DeployModule": "segwise.inference.deploy",
    "ExportError": "segwise.errors",
    "ExportFormat": "segwise.inference.deploy",
    "InstanceDeployModule": "segwise.inference.deploy",
    "export_instance": "segwise.inference.instance_export",
    "InstanceProgram": "segwise.inference.instance_program",
    "load_instance_program": "segwise.inference.instance_program",
    "export_onnx": "segwise.inference.export",
    "export_program": "segwise.inference.export",
    "export_torchscript": "segwise.inference.export",
    "read_onnx_metadata": "segwise.inference.metadata",
    "verification_sizes": "segwise.inference.deploy",
    "verify_export": "segwise.inference.verify",
    "verify_onnx": "segwise.inference.verify",
    "OnnxPredictor": "segwise.inference.onnx_predictor",
    "OnnxInstancePredictor": "segwise.inference.onnx_instance",
    "PredictOptions": "segwise.inferers.options",
    "TTA_FLIPS": "segwise.inferers.options",
    "VOLUME_TTA_FLIPS": "segwise.inferers.options",
    "VolumeOptions": "segwise.inferers.options",
    "ImageInput": "segwise.inference.inputs",
    "PreparedImage": "segwise.inference.inputs",
    "prepare_images": "segwise.inference.inputs",
    "InstancePredictor": "segwise.inference.predictor",
    "PredictionKind": "segwise.inference.kinds",
    "Predictor": "segwise.inference.predictor",
    "SemanticPrediction": "segwise.inference.predictor",
    "SemanticPredictor": "segwise.inference.predictor",
    "load_onnx_predictor": "segwise.inference.predictor",
    "load_predictor": "segwise.inference.predictor",
    "predictor_from_run": "segwise.inference.predictor",
    "write_label_png": "segwise.inference.predictor",
    "VolumePrediction": "segwise.inference.volume_predictor",
    "VolumePredictor": "segwise.inference.volume_predictor",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
