"""Instance segmentation: one output type (`InstancePrediction`), methods as plug-ins
(`segwise.instance.methods.INSTANCE_METHODS`), shared metrics.

Names resolve lazily (PEP 562), so ``import segwise.instance`` imports neither torch,
torchvision, scikit-image nor pycocotools; each is imported by the function that needs it.

Example:
    >>> from segwise.instance import InstancePrediction, build_maskrcnn  # doctest: +SKIP
    >>> model = build_maskrcnn(num_classes=1, weights="/models/mrcnn.pth")  # doctest: +SKIP
"""

from __future__ import annotations

from segwise._lazy import lazy_exports

# public name -> defining module
_LAZY = {
    "InstancePrediction": "segwise.instance.representation",
    "InstanceRecord": "segwise.instance.representation",
    "INSTANCE_METHODS": "segwise.instance.methods",
    "ObjectStats": "segwise.instance.methods",
    "get_method": "segwise.instance.methods",
    "predict_instances": "segwise.instance.methods",
    "MaskRCNNOptions": "segwise.instance.methods.maskrcnn",
    "UNetWatershedOptions": "segwise.instance.methods.unet_watershed",
    "UNET_NUM_CLASSES": "segwise.instance.methods.unet_watershed",
    "decode_unet_logits": "segwise.instance.methods.unet_watershed",
    "unet_targets_from_item": "segwise.instance.methods.unet_watershed",
    "instance_map_from_item": "segwise.instance.methods.unet_watershed",
    "build_maskrcnn": "segwise.instance.maskrcnn",
    "build_maskrcnn_on_encoder": "segwise.instance.maskrcnn",
    "derive_anchors": "segwise.instance.maskrcnn",
    "clean_instances": "segwise.instance.targets",
    "maskrcnn_targets_from_item": "segwise.instance.maskrcnn",
    "collate_maskrcnn": "segwise.instance.maskrcnn",
    "predict_maskrcnn": "segwise.instance.maskrcnn",
    "Decoding": "segwise.instance.watershed",
    "decode_three_class": "segwise.instance.watershed",
    "decode_distance": "segwise.instance.watershed",
    "ClassBalance": "segwise.instance.targets",
    "three_class_target": "segwise.instance.targets",
    "distance_target": "segwise.instance.targets",
    "border_weight_map": "segwise.instance.targets",
    "save_prediction": "segwise.instance.writers",
    "render_overlay": "segwise.instance.writers",
    "write_instance_png": "segwise.instance.writers",
    "read_instance_png": "segwise.instance.writers",
    "write_instance_json": "segwise.instance.writers",
    "write_coco_results_json": "segwise.instance.writers",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
