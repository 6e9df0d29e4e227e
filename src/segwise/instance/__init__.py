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
    "InstanceModel": "segwise.instance.methods",
    "predict_image": "segwise.instance.methods",
    "without_crowd": "segwise.instance.methods",
    "clean_instances": "segwise.data.datasets",  # the one cleaning, done by every dataset item
    # the options of every method
    "MaskRCNNOptions": "segwise.instance.methods.maskrcnn.options",
    "UNetWatershedOptions": "segwise.instance.methods.unet_watershed.options",
    "YOLACTOptions": "segwise.instance.methods.yolact.options",
    "SOLOv2Options": "segwise.instance.methods.solov2.options",
    # Mask R-CNN's builders and decoding
    "build_maskrcnn": "segwise.instance.methods.maskrcnn.model",
    "build_maskrcnn_on_encoder": "segwise.instance.methods.maskrcnn.model",
    "derive_anchors": "segwise.instance.methods.maskrcnn.options",
    "predict_maskrcnn": "segwise.instance.methods.maskrcnn.decode",
    # U-Net + watershed's targets and decoding
    "UNET_NUM_CLASSES": "segwise.instance.methods.unet_watershed.options",
    "Decoding": "segwise.instance.methods.unet_watershed.options",
    "ClassBalance": "segwise.instance.methods.unet_watershed.options",
    "decode_unet_logits": "segwise.instance.methods.unet_watershed.decode",
    "decode_three_class": "segwise.instance.methods.unet_watershed.decode",
    "decode_distance": "segwise.instance.methods.unet_watershed.decode",
    "unet_targets_from_item": "segwise.instance.methods.unet_watershed.targets",
    "instance_map_from_item": "segwise.instance.methods.unet_watershed.targets",
    "three_class_target": "segwise.instance.methods.unet_watershed.targets",
    "distance_target": "segwise.instance.methods.unet_watershed.targets",
    "border_weight_map": "segwise.instance.methods.unet_watershed.targets",
    # writers
    "save_prediction": "segwise.instance.writers",
    "render_overlay": "segwise.instance.writers",
    "write_instance_png": "segwise.instance.writers",
    "read_instance_png": "segwise.instance.writers",
    "write_instance_json": "segwise.instance.writers",
    "write_coco_results_json": "segwise.instance.writers",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
