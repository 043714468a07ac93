"""A small helper for writing zoo graphs node by node, with seeded random weights.

The zoo models are written the way a legacy (TorchScript-based) torch.onnx export lays them out,
because that is what edgecc's users feed it: BatchNormalization left unfused, LayerNorm and GELU
spelled out as primitive ops, Linear as MatMul+Add (Gemm only on 2-D inputs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

OPSET = 17
# onnxruntime 1.31 rejects the IR version onnx 1.23 writes by default; 8 is the first to allow opset 17.
IR_VERSION = 8
PRODUCER = "edgecc.zoo"

# BatchNorm gamma ranges. The last BN of a residual branch gets a small gamma so that the residual
# stream grows slowly with depth even though random running statistics do not normalise anything.
BN_GAMMA = (0.5, 1.0)
BN_GAMMA_RESIDUAL_TAIL = (0.1, 0.3)

Dims = Sequence[int | str]


def value_info(name: str, elem_type: int, dims: Dims) -> onnx.ValueInfoProto:
    """A graph input/output declaration; str dims become symbolic (dim_param)."""
    return helper.make_tensor_value_info(name, elem_type, list(dims))


class GraphBuilder:
    """Accumulates nodes and initializers; every random draw comes from one seeded generator.

    Methods take and return value names. Weighted layers take a `name` (torch-style, e.g.
    "layer1.0.conv1") used for their initializers; other nodes get generated unique names.
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken: set[str] = set()
        self._constants: dict[tuple[str, bytes, tuple[int, ...]], str] = {}

    # -- naming and raw building blocks -------------------------------------------------------

    def unique(self, base: str) -> str:
        """`base` itself if unused, else `base_1`, `base_2`, ..."""
        candidate, n = base, 0
        while candidate in self._taken:
            n += 1
            candidate = f"{base}_{n}"
        self._taken.add(candidate)
        return candidate

    def weight(self, name: str, array: np.ndarray) -> str:
        """Add an initializer and return its (unique) name."""
        name = self.unique(name)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def constant(self, value: float | int | Sequence[int], dtype: type = np.float32) -> str:
        """A small constant initializer, shared between all nodes that use the same value."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.tobytes(), array.shape)
        if key not in self._constants:
            self._constants[key] = self.weight("const", array)
        return self._constants[key]

    def op(self, op_type: str, inputs: Sequence[str], *, output: str | None = None, **attrs) -> str:
        """Append one single-output node and return its output name."""
        node_name = self.unique(op_type)
        output = self.unique(output) if output else node_name
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=node_name, **attrs))
        return output

    def normal(self, shape: Sequence[int], std: float) -> np.ndarray:
        return self.rng.standard_normal(tuple(shape), dtype=np.float32) * np.float32(std)

    def uniform(self, shape: Sequence[int], low: float, high: float) -> np.ndarray:
        return self.rng.uniform(low, high, size=tuple(shape)).astype(np.float32)

    # -- element-wise ------------------------------------------------------------------------

    def add(self, a: str, b: str, output: str | None = None) -> str:
        return self.op("Add", [a, b], output=output)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", [a, b])

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def clip6(self, x: str) -> str:
        """ReLU6 as torch exports it: Clip with min/max given as initializer inputs."""
        return self.op("Clip", [x, self.constant(0.0), self.constant(6.0)])

    def gelu_erf(self, x: str) -> str:
        """Exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))), in the op order torch exports it."""
        erf = self.op("Erf", [self.op("Div", [x, self.constant(math.sqrt(2.0))])])
        return self.mul(self.mul(x, self.add(erf, self.constant(1.0))), self.constant(0.5))

    # -- convolutional layers ----------------------------------------------------------------

    def conv(self, x: str, in_ch: int, out_ch: int, k: int, stride: int = 1, pad: int | None = None,
             groups: int = 1, *, name: str) -> str:
        """Bias-free Conv with He-normal (fan_in) weights; `pad` defaults to k // 2.

        fan_in rather than torchvision's fan_out: with groups == channels, fan_out would shrink
        every depthwise output by sqrt(channels) and MobileNetV2 would collapse to zero.
        """
        fan_in = in_ch // groups * k * k
        w = self.weight(f"{name}.weight", self.normal((out_ch, in_ch // groups, k, k), math.sqrt(2.0 / fan_in)))
        pad = k // 2 if pad is None else pad
        return self.op("Conv", [x, w], dilations=[1, 1], group=groups, kernel_shape=[k, k],
                       pads=[pad] * 4, strides=[stride, stride])

    def batchnorm(self, x: str, channels: int, *, name: str, residual_tail: bool = False) -> str:
        """Inference BatchNormalization with random, healthy statistics (see BN_GAMMA*)."""
        low, high = BN_GAMMA_RESIDUAL_TAIL if residual_tail else BN_GAMMA
        params = [
            self.weight(f"{name}.weight", self.uniform((channels,), low, high)),
            self.weight(f"{name}.bias", self.normal((channels,), 0.05)),
            self.weight(f"{name}.running_mean", self.normal((channels,), 0.05)),
            self.weight(f"{name}.running_var", self.uniform((channels,), 0.5, 1.5)),
        ]
        return self.op("BatchNormalization", [x, *params], epsilon=1e-5, momentum=0.9)

    def conv_bn(self, x: str, in_ch: int, out_ch: int, k: int, stride: int = 1, groups: int = 1, *,
                conv: str, bn: str, residual_tail: bool = False) -> str:
        """Conv (no bias) followed by BatchNormalization; the caller adds the activation."""
        y = self.conv(x, in_ch, out_ch, k, stride, groups=groups, name=conv)
        return self.batchnorm(y, out_ch, name=bn, residual_tail=residual_tail)

    def classifier_head(self, x: str, features: int, classes: int, *, name: str, output: str) -> str:
        """GlobalAveragePool -> Flatten -> Gemm, the tail of every torchvision classifier."""
        flat = self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)
        return self.gemm(flat, features, classes, name=name, std=0.01, output=output)

    # -- dense layers ------------------------------------------------------------------------

    def gemm(self, x: str, in_f: int, out_f: int, *, name: str, std: float, output: str | None = None) -> str:
        """nn.Linear on a 2-D input: Gemm with the torch [out, in] weight and transB=1; zero bias."""
        w = self.weight(f"{name}.weight", self.normal((out_f, in_f), std))
        b = self.weight(f"{name}.bias", np.zeros(out_f, np.float32))
        return self.op("Gemm", [x, w, b], output=output, alpha=1.0, beta=1.0, transB=1)

    def matmul(self, a: str, b: str) -> str:
        return self.op("MatMul", [a, b])

    def linear(self, x: str, in_f: int, out_f: int, *, name: str, std: float) -> str:
        """nn.Linear on an N-D input: MatMul by the pre-transposed [in, out] weight, then Add bias."""
        w = self.weight(f"{name}.weight", self.normal((in_f, out_f), std))
        b = self.weight(f"{name}.bias", np.zeros(out_f, np.float32))
        return self.op("Add", [self.matmul(x, w), b])

    def layernorm_decomposed(self, x: str, dim: int, *, name: str, eps: float = 1e-12,
                             output: str | None = None) -> str:
        """LayerNorm over the last axis spelled out as primitives; gamma 1, beta 0."""
        mean = self.op("ReduceMean", [x], axes=[-1], keepdims=1)
        centred = self.op("Sub", [x, mean])
        var = self.op("ReduceMean", [self.op("Pow", [centred, self.constant(2.0)])], axes=[-1], keepdims=1)
        std = self.op("Sqrt", [self.add(var, self.constant(eps))])
        normed = self.op("Div", [centred, std])
        gamma = self.weight(f"{name}.weight", np.ones(dim, np.float32))
        beta = self.weight(f"{name}.bias", np.zeros(dim, np.float32))
        return self.add(self.mul(normed, gamma), beta, output=output)

    # -- the model ---------------------------------------------------------------------------

    def make_model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto], *,
                   name: str, doc: str) -> onnx.ModelProto:
        """Wrap the accumulated graph in an opset-17, IR-8 model."""
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, producer_name=PRODUCER, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model.doc_string = doc
        return model
