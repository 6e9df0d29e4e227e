"""The YOLACT network (Bolya et al., "YOLACT: Real-time Instance Segmentation", ICCV 2019).

``encoder -> FPN (P3-P7) -> {protonet on P3, one prediction head shared by every level,
semantic head on P3}`` (paper Fig. 2):

- **Protonet** (section 3.2, Fig. 3): three 3x3 convs (256, ReLU) on P3, a 2x bilinear upsample,
  a 3x3 conv (ReLU) and a 1x1 conv to ``k`` prototypes with a ReLU (the paper keeps prototypes
  non-negative "for interpretability"). Prototypes are at stride 4: ``(N, k, H/4, W/4)``, the
  paper's 138 x 138 for a 550 x 550 image.
- **Prediction head** (section 3.3, Fig. 4): a 3x3 conv (ReLU) shared by three 3x3 convs giving,
  per anchor, ``C + 1`` class scores (``C`` with the focal class loss, which has no background
  column), 4 box deltas and ``k`` mask coefficients squashed by ``tanh``. Its weights are shared
  across P3-P7 (one module applied to every level).
- **Semantic head** (section 3.4): a 1x1 conv on P3 to ``C`` channels, sigmoid per class; used
  by the auxiliary loss in training only.

Initialisation: PyTorch's default for every conv (the reference code's Xavier makes no
documented difference), except the class conv's bias under the focal loss, set to the RetinaNet
prior ``-log((1 - 0.01) / 0.01)`` (Lin et al. 2017b, section 4.1) so that early training is not
swamped by background. The FPN initialises itself (`segwise.models.necks.fpn`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segwise.instance.anchors import grid_anchors
from segwise.models.necks import EncoderFPN

__all__ = ["LEVELS", "YOLACTNet"]

#: FPN levels of YOLACT (strides 8 ... 128)
LEVELS = (3, 4, 5, 6, 7)
#: stride of the prototypes (P3 upsampled 2x)
PROTO_STRIDE = 4


def _conv(cin: int, cout: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2)


class _PredictionHead(nn.Module):
    def __init__(self, channels: int, *, anchors: int, class_outputs: int, prototypes: int):
        super().__init__()
        self.anchors, self.class_outputs, self.prototypes = anchors, class_outputs, prototypes
        self.up = _conv(channels, channels)
        self.cls = _conv(channels, anchors * class_outputs)
        self.box = _conv(channels, anchors * 4)
        self.coef = _conv(channels, anchors * prototypes)

    @staticmethod
    def _flat(x: Tensor, per_anchor: int) -> Tensor:
        # (N, a * X, h, w) -> (N, h * w * a, X): level, row, column, anchor (grid_anchors' order).
        # Always a copy (as reshape makes here anyway): a plain reshape lets torch.export guard
        # on h * w != 1 (view or copy), and the program would refuse images with a 1 x 1 level
        x = x.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)
        return x.reshape(x.shape[0], -1, per_anchor)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.relu(self.up(x))
        return (
            self._flat(self.cls(x), self.class_outputs),
            self._flat(self.box(x), 4),
            torch.tanh(self._flat(self.coef(x), self.prototypes)),
        )


class YOLACTNet(nn.Module):
    """Encoder + FPN + YOLACT heads (module docstring).

    Args:
        backbone: an `EncoderFPN` with levels ``(3, 4, 5, 6, 7)``.
        num_classes: foreground classes ``C``.
        num_prototypes: ``k`` (paper: 32).
        anchor_sizes: anchor size per level, px (5 values).
        aspect_ratios: anchor ``height / width`` ratios (paper: 1, 1/2, 2).
        anchor_scales: multipliers of each level's size (YOLACT: 1; YOLACT++: 1, 2^(1/3),
            2^(2/3)); ``len(anchor_scales) * len(aspect_ratios)`` anchors per cell.
        background_class: whether the class head has a background column (softmax + OHEM
            loss) or not (sigmoid focal loss).

    ``forward(images)`` takes ``images (N, C_in, H, W)``, any ``H, W >= 1`` (padded at the
    bottom/right to the encoder's divisor inside), and returns a dict:

    - ``"class_logits"``: ``(N, A, C + 1)`` (or ``(N, A, C)`` without background column);
    - ``"box_deltas"``: ``(N, A, 4)`` SSD-coded (`segwise.instance.boxes.encode_boxes`);
    - ``"coefficients"``: ``(N, A, k)`` in [-1, 1];
    - ``"prototypes"``: ``(N, k, H'/4, W'/4)``, ``H', W'`` the padded size;
    - ``"anchors"``: ``(A, 4)`` xyxy in input pixels (shared by the batch);
    - ``"semantic_logits"``: ``(N, C, H'/8, W'/8)``, in training mode only.
    """

    def __init__(
        self,
        backbone: EncoderFPN,
        *,
        num_classes: int,
        num_prototypes: int,
        anchor_sizes: Sequence[float],
        aspect_ratios: Sequence[float],
        background_class: bool,
        anchor_scales: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__()
        if tuple(backbone.levels) != LEVELS:
            raise ValueError(f"YOLACT needs FPN levels {LEVELS}; got {tuple(backbone.levels)}")
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.background_class = bool(background_class)
        self.anchor_sizes = tuple(float(s) for s in anchor_sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.anchor_scales = tuple(float(m) for m in anchor_scales)
        self.divisor = max(backbone.divisor, 2 ** LEVELS[0])
        ch = backbone.out_channels
        self.protonet = nn.Sequential(
            _conv(ch, ch), nn.ReLU(), _conv(ch, ch), nn.ReLU(), _conv(ch, ch), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            _conv(ch, ch), nn.ReLU(), _conv(ch, num_prototypes, 1), nn.ReLU(),
        )  # fmt: skip
        self.head = _PredictionHead(
            ch,
            anchors=len(self.anchor_scales) * len(self.aspect_ratios),
            class_outputs=self.num_classes + int(background_class),
            prototypes=num_prototypes,
        )
        self.semantic = nn.Conv2d(ch, self.num_classes, 1)
        if not background_class:
            nn.init.constant_(self.head.cls.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """See the class docstring."""
        height, width = images.shape[-2:]
        padded = F.pad(images, (0, (-width) % self.divisor, 0, (-height) % self.divisor))
        features = self.backbone(padded)  # {"p3": (N, ch, H'/8, W'/8), ..., "p7"}
        logits, deltas, coefs = zip(*(self.head(f) for f in features.values()), strict=True)
        out = {
            "class_logits": torch.cat(logits, dim=1),
            "box_deltas": torch.cat(deltas, dim=1),
            "coefficients": torch.cat(coefs, dim=1),
            "prototypes": self.protonet(features["p3"]),
            "anchors": grid_anchors(
                [f.shape[-2:] for f in features.values()],
                strides=[2**level for level in LEVELS],
                sizes=self.anchor_sizes,
                aspect_ratios=self.aspect_ratios,
                device=images.device,
                scales=self.anchor_scales,
            ),
        }
        if self.training:
            out["semantic_logits"] = self.semantic(features["p3"])
        return out
