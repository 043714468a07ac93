"""A tiny residual CNN for fast tests and demos (well under 1 ms per image on a CPU)."""

from __future__ import annotations

import onnx
from onnx import TensorProto

from edgecc.zoo._builder import GraphBuilder, value_info

TINYCNN_DESCRIPTION = "Tiny residual CNN (16/32/64 channels), 32x32 input, 10 classes; for tests and demos"


def tinycnn(seed: int = 0) -> onnx.ModelProto:
    """A small CNN: input `input` [N,3,32,32], output `logits` [N,10].

    Conv+BN+ReLU at 16 channels, one strided conv to 32 channels at 16x16, one two-conv residual
    block, a 1x1 conv to 64 channels, then the usual pooling classifier.
    """
    b = GraphBuilder(seed)
    x = b.relu(b.conv_bn("input", 3, 16, 3, conv="conv1", bn="bn1"))
    x = b.relu(b.conv_bn(x, 16, 32, 3, 2, conv="conv2", bn="bn2"))
    y = b.relu(b.conv_bn(x, 32, 32, 3, conv="block.conv1", bn="block.bn1"))
    y = b.conv_bn(y, 32, 32, 3, conv="block.conv2", bn="block.bn2", residual_tail=True)
    x = b.relu(b.add(x, y))
    x = b.relu(b.conv_bn(x, 32, 64, 1, conv="conv3", bn="bn3"))
    b.classifier_head(x, 64, 10, name="fc", output="logits")
    return b.make_model(
        [value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [value_info("logits", TensorProto.FLOAT, ["N", 10])],
        name="tinycnn", doc=TINYCNN_DESCRIPTION,
    )
