"""A hypothesis strategy for small random ONNX graphs of common ops, with shapes tracked while building,
so every generated model is valid and runs in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
from hypothesis import strategies as st
from onnx import TensorProto, numpy_helper


class _Graph:
    def __init__(self, rng: np.random.Generator, channels: int, size: int):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.values: list[tuple[str, tuple[int, ...]]] = [("x", (1, channels, size, size))]
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, arr: np.ndarray) -> str:
        n = self.name("c")
        self.inits.append(numpy_helper.from_array(arr, n))
        return n

    def add(self, op: str, inputs: list[str], shape: tuple[int, ...], **attrs) -> None:
        out = self.name("t")
        self.nodes.append(oh.make_node(op, inputs, [out], name=self.name(op), **attrs))
        self.values.append((out, shape))

    def step(self, choice: int) -> None:
        x, shape = self.values[-1]
        n, c, h, w = shape
        r = self.rng
        kind = choice % 10
        if kind == 0:
            self.add(["Relu", "Sigmoid", "Tanh", "Neg", "Abs"][r.integers(5)], [x], shape)
        elif kind == 1:
            self.add("Add" if r.integers(2) else "Mul", [x, self.const(r.standard_normal((1, c, 1, 1)).astype(np.float32))], shape)
        elif kind == 2:
            out_c = int(r.choice([c, 2 * c, 4]))
            groups = c if out_c == c and r.integers(2) else 1
            k = int(r.choice([1, 3]))
            wt = (r.standard_normal((out_c, c // groups, k, k)) / np.sqrt(c * k * k / groups)).astype(np.float32)
            self.add("Conv", [x, self.const(wt), self.const(r.standard_normal(out_c).astype(np.float32) * 0.1)],
                     (n, out_c, h, w), pads=[k // 2] * 4, group=groups)
        elif kind == 3:
            p = [self.const(a.astype(np.float32)) for a in (r.uniform(0.5, 1.5, c), r.normal(0, 0.1, c), r.normal(0, 0.1, c), r.uniform(0.5, 1.5, c))]
            self.add("BatchNormalization", [x, *p], shape, epsilon=1e-5)
        elif kind == 4 and h >= 2 and h % 2 == 0:
            self.add("MaxPool" if r.integers(2) else "AveragePool", [x], (n, c, h // 2, w // 2), kernel_shape=[2, 2], strides=[2, 2])
        elif kind == 5:
            same = [v for v, s in self.values if s == shape and v != x]
            if same:
                self.add("Add", [x, same[r.integers(len(same))]], shape)
        elif kind == 6:
            self.add("Concat", [x, x], (n, 2 * c, h, w), axis=1)
        elif kind == 7:
            self.add("Transpose", [x], (n, h, w, c), perm=[0, 2, 3, 1])
            t, _ = self.values[-1]
            self.add("Transpose", [t], shape, perm=[0, 3, 1, 2])
        elif kind == 8:
            self.add("Clip", [x, self.const(np.array(0.0, np.float32)), self.const(np.array(6.0, np.float32))], shape)
        else:
            self.add("Identity", [x], shape)

    def model(self) -> onnx.ModelProto:
        y, shape = self.values[-1]
        outputs = [oh.make_tensor_value_info(y, TensorProto.FLOAT, list(shape))]
        graph = oh.make_graph(self.nodes or [oh.make_node("Identity", ["x"], ["y"])], "random",
                              [oh.make_tensor_value_info("x", TensorProto.FLOAT, list(self.values[0][1]))],
                              outputs if self.nodes else [oh.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
                              initializer=self.inits)
        model = oh.make_model(graph, opset_imports=[oh.make_operatorsetid("", 17)])
        model.ir_version = 8
        return model


@st.composite
def random_models(draw) -> onnx.ModelProto:
    """A valid model: input x [1, C, S, S], 1 to 12 ops drawn from a common-op vocabulary."""
    seed = draw(st.integers(0, 2**32 - 1))
    channels = draw(st.sampled_from([2, 3, 4, 8]))
    size = draw(st.sampled_from([4, 8, 16]))
    steps = draw(st.lists(st.integers(0, 9), min_size=1, max_size=12))
    g = _Graph(np.random.default_rng(seed), channels, size)
    for s in steps:
        g.step(s)
    return g.model()
