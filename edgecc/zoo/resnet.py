"""ResNet-18 and ResNet-50 with torchvision's exact layer layout and parameter counts."""

from __future__ import annotations

import onnx
from onnx import TensorProto

from edgecc.zoo._builder import GraphBuilder, value_info

RESNET18_DESCRIPTION = "ResNet-18 (torchvision layout, BasicBlock [2,2,2,2]), 224x224 ImageNet classifier"
RESNET50_DESCRIPTION = "ResNet-50 (torchvision layout, Bottleneck [3,4,6,3]), 224x224 ImageNet classifier"

STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)


def _basic_block(b: GraphBuilder, x: str, in_ch: int, width: int, stride: int, name: str) -> tuple[str, int]:
    y = b.relu(b.conv_bn(x, in_ch, width, 3, stride, conv=f"{name}.conv1", bn=f"{name}.bn1"))
    y = b.conv_bn(y, width, width, 3, conv=f"{name}.conv2", bn=f"{name}.bn2", residual_tail=True)
    return _join_shortcut(b, x, y, in_ch, width, stride, name), width


def _bottleneck(b: GraphBuilder, x: str, in_ch: int, width: int, stride: int, name: str) -> tuple[str, int]:
    out_ch = width * 4
    y = b.relu(b.conv_bn(x, in_ch, width, 1, conv=f"{name}.conv1", bn=f"{name}.bn1"))
    # torchvision (ResNet v1.5) strides the 3x3 conv, not the first 1x1.
    y = b.relu(b.conv_bn(y, width, width, 3, stride, conv=f"{name}.conv2", bn=f"{name}.bn2"))
    y = b.conv_bn(y, width, out_ch, 1, conv=f"{name}.conv3", bn=f"{name}.bn3", residual_tail=True)
    return _join_shortcut(b, x, y, in_ch, out_ch, stride, name), out_ch


def _join_shortcut(b: GraphBuilder, x: str, branch: str, in_ch: int, out_ch: int, stride: int, name: str) -> str:
    """Add the identity (or a 1x1 conv+BN downsample when the shape changes), then ReLU."""
    if stride != 1 or in_ch != out_ch:
        x = b.conv_bn(x, in_ch, out_ch, 1, stride, conv=f"{name}.downsample.0", bn=f"{name}.downsample.1")
    return b.relu(b.add(branch, x))


def _resnet(seed: int, block, blocks_per_stage: tuple[int, ...], graph_name: str, doc: str) -> onnx.ModelProto:
    b = GraphBuilder(seed)
    x = b.relu(b.conv_bn("input", 3, 64, 7, 2, conv="conv1", bn="bn1"))
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    channels = 64
    for stage, (count, width, stride) in enumerate(zip(blocks_per_stage, STAGE_WIDTHS, STAGE_STRIDES), start=1):
        for i in range(count):
            x, channels = block(b, x, channels, width, stride if i == 0 else 1, f"layer{stage}.{i}")
    b.classifier_head(x, channels, 1000, name="fc", output="logits")
    return b.make_model(
        [value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        name=graph_name, doc=doc,
    )


def resnet18(seed: int = 0) -> onnx.ModelProto:
    """ResNet-18 with seeded random weights: input `input` [N,3,224,224], output `logits` [N,1000]."""
    return _resnet(seed, _basic_block, (2, 2, 2, 2), "resnet18", RESNET18_DESCRIPTION)


def resnet50(seed: int = 0) -> onnx.ModelProto:
    """ResNet-50 with seeded random weights: input `input` [N,3,224,224], output `logits` [N,1000]."""
    return _resnet(seed, _bottleneck, (3, 4, 6, 3), "resnet50", RESNET50_DESCRIPTION)
