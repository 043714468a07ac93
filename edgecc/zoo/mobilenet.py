"""MobileNetV2 (width 1.0) with torchvision's exact layer layout and parameter count."""

from __future__ import annotations

import onnx
from onnx import TensorProto

from edgecc.zoo._builder import GraphBuilder, value_info

MOBILENETV2_DESCRIPTION = "MobileNetV2 (torchvision layout, width 1.0, ReLU6 as Clip), 224x224 ImageNet classifier"

# (expansion t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def _inverted_residual(b: GraphBuilder, x: str, in_ch: int, out_ch: int, stride: int, expand: int, name: str) -> str:
    hidden = in_ch * expand
    use_residual = stride == 1 and in_ch == out_ch
    y, layer = x, 0
    if expand != 1:
        y = b.clip6(b.conv_bn(y, in_ch, hidden, 1, conv=f"{name}.conv.0.0", bn=f"{name}.conv.0.1"))
        layer = 1
    y = b.clip6(b.conv_bn(y, hidden, hidden, 3, stride, groups=hidden,
                          conv=f"{name}.conv.{layer}.0", bn=f"{name}.conv.{layer}.1"))
    # Linear bottleneck: the projection has no activation.
    y = b.conv_bn(y, hidden, out_ch, 1, conv=f"{name}.conv.{layer + 1}", bn=f"{name}.conv.{layer + 2}",
                  residual_tail=use_residual)
    return b.add(x, y) if use_residual else y


def mobilenetv2(seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 with seeded random weights: input `input` [N,3,224,224], output `logits` [N,1000]."""
    b = GraphBuilder(seed)
    x = b.clip6(b.conv_bn("input", 3, STEM_CHANNELS, 3, 2, conv="features.0.0", bn="features.0.1"))
    channels, index = STEM_CHANNELS, 1
    for expand, out_ch, repeats, first_stride in INVERTED_RESIDUAL_SETTING:
        for i in range(repeats):
            x = _inverted_residual(b, x, channels, out_ch, first_stride if i == 0 else 1, expand, f"features.{index}")
            channels, index = out_ch, index + 1
    x = b.clip6(b.conv_bn(x, channels, LAST_CHANNELS, 1, conv=f"features.{index}.0", bn=f"features.{index}.1"))
    b.classifier_head(x, LAST_CHANNELS, 1000, name="classifier.1", output="logits")
    return b.make_model(
        [value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        name="mobilenetv2", doc=MOBILENETV2_DESCRIPTION,
    )
