"""What a model is made of: opsets, op counts, parameters, FLOPs and a memory estimate.

:func:`analyze` reads an ``onnx_ir.Model`` whose shapes are static and inferred (a
:class:`~edgecc.graph.io.PreparedModel`'s ``model``). It never changes the model.

FLOPs of one inference are counted from the inferred static shapes; one multiply-add is 2 FLOPs.
Subgraph bodies (If branches, Loop and Scan bodies) are counted once each, whatever the trip count.

==========================================  ====================================================
op                                          FLOPs
==========================================  ====================================================
Conv, ConvInteger, QLinearConv              2 * out_elems * (C_in / group) * prod(kernel)
                                            (+ out_elems with a bias)
ConvTranspose                               2 * in_elems * (C_out / group) * prod(kernel)
                                            (+ out_elems with a bias)
Gemm                                        2 * M * N * K (+ M * N with C)
MatMul, MatMulInteger, QLinearMatMul        2 * out_elems * K (batched, broadcasting, 1-D operands)
Einsum (one or two operands)                two: prod(index sizes), x2 when an index is summed;
                                            one: in_elems when an index is summed, else 0
element-wise ops (Add, Relu, Clip, Erf...)  1 per output element ((inputs - 1) for Sum/Max/Min/Mean)
BatchNormalization                          2 per element
MaxPool, AveragePool, LpPool                prod(kernel) per output element
Global*Pool, Reduce*, ArgMax/ArgMin, CumSum 1 per input element
Softmax, LogSoftmax                         5 per element
LayerNormalization, Instance/GroupNorm      8 per element
data movement (Reshape, Transpose, Gather,  0
Concat, Slice, Cast, Shape, If/Loop/Scan..)
==========================================  ====================================================

A node whose needed shapes are not static counts 0 and is named in ``flops_unknown``; a node whose
op has no rule here (custom domains, Resize, LSTM, TopK...) counts 0 and its op id is counted in
``flops_no_rule``. Neither is ever silent, and neither stops the analysis.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ..backends.base import op_id
from .io import TensorSpec

__all__ = ["ModelAnalysis", "analyze", "node_flops", "tensor_spec"]


@dataclass(frozen=True)
class ModelAnalysis:
    """The static facts of one model. Sizes in bytes; FLOPs of one inference (multiply-add = 2)."""

    opsets: dict[str, int]
    ir_version: int
    producer: str
    op_histogram: dict[str, int]
    nodes: int
    params: int
    param_bytes: int
    flops: int
    largest_activation_bytes: int
    memory_estimate_bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    flops_unknown: list[str] = field(default_factory=list)
    flops_no_rule: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """A plain dict (only str, int, list, dict) for ``--json`` output."""
        return {
            "opsets": dict(self.opsets),
            "ir_version": self.ir_version,
            "producer": self.producer,
            "nodes": self.nodes,
            "op_histogram": dict(self.op_histogram),
            "params": self.params,
            "param_bytes": self.param_bytes,
            "flops": self.flops,
            "flops_unknown": list(self.flops_unknown),
            "flops_no_rule": dict(self.flops_no_rule),
            "largest_activation_bytes": self.largest_activation_bytes,
            "memory_estimate_bytes": self.memory_estimate_bytes,
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
        }


def tensor_spec(value: ir.Value) -> TensorSpec:
    """The TensorSpec of a graph input or output; an unknown dimension is -1, an unknown dtype "unknown"."""
    dims = tuple(d if isinstance(d, int) else -1 for d in (value.shape or ()))
    dtype = np.dtype(value.dtype.numpy()).name if value.dtype is not None else "unknown"
    return TensorSpec(value.name or "", dtype, dims)


def analyze(model: ir.Model) -> ModelAnalysis:
    """Count ops, parameters and FLOPs of ``model`` and estimate the memory one inference needs.

    - ``nodes`` and ``op_histogram`` include the nodes of every subgraph; the histogram is keyed by
      op id (``Conv``, ``com.microsoft::FusedConv``) and sorted by count, then name.
    - ``params``: elements of floating-point initializers (of every graph) and of floating-point
      Constant nodes. ``param_bytes``: bytes of all initializers, whatever their type.
    - ``flops``: see the module docstring for the rule per op.
    - ``memory_estimate_bytes`` is a simple estimate, not a liveness analysis:
      ``param_bytes + 2 * largest_activation_bytes`` (room for one operand and one result the size of
      the largest tensor). ``largest_activation_bytes`` is the largest graph input or node output
      (Constants excluded) with a static shape; tensors without one are left out of it.

    Shapes are read as they are on the model; nothing is inferred here.
    """
    graphs = [model.graph, *model.graph.subgraphs()]
    histogram: Counter[str] = Counter()
    flops = 0
    unknown: list[str] = []
    no_rule: Counter[str] = Counter()
    for index, node in enumerate(model.graph.all_nodes()):
        key = op_id(node.domain, node.op_type)
        histogram[key] += 1
        rule = _RULES.get(key)
        if rule is None:
            no_rule[key] += 1
            continue
        try:
            flops += rule(node)
        except _UnknownShape:
            unknown.append(node.name or f"<unnamed {key} #{index}>")
        except _NoRule:
            no_rule[key] += 1

    largest = max((_activation_bytes(v) for v in _activations(graphs)), default=0)
    param_bytes = sum(
        v.const_value.nbytes for g in graphs for v in g.initializers.values() if v.const_value is not None
    )
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    return ModelAnalysis(
        opsets={("ai.onnx" if d == "" else d): v for d, v in sorted(model.opset_imports.items())},
        ir_version=model.ir_version,
        producer=producer,
        op_histogram=dict(sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))),
        nodes=sum(histogram.values()),
        params=_param_count(model, graphs),
        param_bytes=param_bytes,
        flops=flops,
        largest_activation_bytes=largest,
        memory_estimate_bytes=param_bytes + 2 * largest,
        inputs=[tensor_spec(v) for v in model.graph.inputs],
        outputs=[tensor_spec(v) for v in model.graph.outputs],
        flops_unknown=unknown,
        flops_no_rule=dict(sorted(no_rule.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def node_flops(node: ir.Node) -> int | None:
    """FLOPs of one node by the module's rules; None when its shapes are unknown or it has no rule."""
    rule = _RULES.get(op_id(node.domain, node.op_type))
    if rule is None:
        return None
    try:
        return rule(node)
    except (_UnknownShape, _NoRule):
        return None


# -- parameters and activations ---------------------------------------------------------------


def _is_float(dtype: ir.DataType | None) -> bool:
    return dtype is not None and dtype.is_floating_point()


def _param_count(model: ir.Model, graphs: list[ir.Graph]) -> int:
    count = sum(
        v.const_value.size for g in graphs for v in g.initializers.values()
        if v.const_value is not None and _is_float(v.const_value.dtype)
    )
    for node in model.graph.all_nodes():
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            continue
        tensor = node.attributes.get_tensor("value")
        if tensor is not None and _is_float(tensor.dtype):
            count += tensor.size
        elif "value_float" in node.attributes:
            count += 1
        elif "value_floats" in node.attributes:
            count += len(node.attributes.get_floats("value_floats"))
    return count


def _activations(graphs: list[ir.Graph]) -> Iterable[ir.Value]:
    """Graph inputs and node outputs that are computed at run time (not initializers or Constants)."""
    for graph in graphs:
        initializers = set(graph.initializers.values())
        yield from (v for v in graph.inputs if v not in initializers)
        for node in graph:
            if node.op_type != "Constant":
                yield from node.outputs


def _activation_bytes(value: ir.Value) -> int:
    if value.dtype is None or value.shape is None or not value.shape.is_static():
        return 0
    try:
        itemsize = value.dtype.itemsize
    except TypeError:  # strings and other types without a fixed width
        return 0
    return math.ceil(math.prod(value.shape.numpy()) * itemsize)


# -- FLOP rules --------------------------------------------------------------------------------


class _UnknownShape(Exception):
    """A shape the rule needs is not static (or the shapes contradict each other)."""


class _NoRule(Exception):
    """The op has a rule, but not for this form of it (an Einsum of three operands)."""


def _input(node: ir.Node, index: int) -> ir.Value | None:
    return node.inputs[index] if index < len(node.inputs) else None


def _dims(value: ir.Value | None) -> tuple[int, ...]:
    if value is None:
        raise _UnknownShape
    shape = value.shape
    if shape is None and value.const_value is not None:
        shape = value.const_value.shape
    if shape is None or not shape.is_static():
        raise _UnknownShape
    return tuple(int(d) for d in shape)


def _out_elems(node: ir.Node) -> int:
    return math.prod(_dims(node.outputs[0]))


def _in_elems(node: ir.Node) -> int:
    return math.prod(_dims(_input(node, 0)))


def _conv(weight: int, bias: int | None) -> Callable[[ir.Node], int]:
    def rule(node: ir.Node) -> int:
        out = _out_elems(node)
        w = _dims(_input(node, weight))  # [C_out, C_in / group, *kernel]
        has_bias = bias is not None and _input(node, bias) is not None
        return 2 * out * math.prod(w[1:]) + (out if has_bias else 0)

    return rule


def _conv_transpose(node: ir.Node) -> int:
    w = _dims(_input(node, 1))  # [C_in, C_out / group, *kernel]: each input element meets prod(w[1:]) weights
    bias = _out_elems(node) if _input(node, 2) is not None else 0
    return 2 * _in_elems(node) * math.prod(w[1:]) + bias


def _gemm(node: ir.Node) -> int:
    a, b = _dims(_input(node, 0)), _dims(_input(node, 1))
    if len(a) != 2 or len(b) != 2:
        raise _UnknownShape
    m, k = (a[1], a[0]) if node.attributes.get_int("transA", 0) else a
    n = b[0] if node.attributes.get_int("transB", 0) else b[1]
    return 2 * m * n * k + (m * n if _input(node, 2) is not None else 0)


def _matmul(a_index: int, b_index: int) -> Callable[[ir.Node], int]:
    def rule(node: ir.Node) -> int:
        a, b = _dims(_input(node, a_index)), _dims(_input(node, b_index))
        if not a or not b:
            raise _UnknownShape
        a = a if len(a) > 1 else (1, *a)  # numpy's 1-D promotion
        b = b if len(b) > 1 else (*b, 1)
        try:
            batch = np.broadcast_shapes(a[:-2], b[:-2])
        except ValueError:
            raise _UnknownShape from None
        return 2 * math.prod(batch) * a[-2] * b[-1] * a[-1]

    return rule


def _einsum(node: ir.Node) -> int:
    equation = node.attributes.get_string("equation", "").replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) > 2 or len(terms) != len(node.inputs):
        raise _NoRule
    sizes: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for term, value in zip(terms, node.inputs):
        labels = _einsum_labels(term, len(_dims(value)))
        for label, size in zip(labels, _dims(value)):
            sizes[label] = max(sizes.get(label, 1), size)  # 1 broadcasts
            counts[label] += 1
    if arrow:
        ellipsis = sum(1 for k in sizes if k.startswith(".")) if "..." in rhs else 0
        output = set(_einsum_labels(rhs, len(rhs.replace("...", "")) + ellipsis))
    else:  # implicit mode: the output keeps the labels that appear once, and the ellipsis
        output = {k for k in sizes if counts[k] == 1 or k.startswith(".")}
    summed = any(k not in output for k in sizes)
    if len(terms) == 1:
        return _in_elems(node) if summed else 0
    return math.prod(sizes.values()) * (2 if summed else 1)


def _einsum_labels(term: str, rank: int) -> list[str]:
    """One label per dimension; the ellipsis's dimensions get labels counted from its right end."""
    if "..." not in term:
        return list(term)
    before, _, after = term.partition("...")
    ellipsis = rank - len(before) - len(after)
    return [*before, *(f".{ellipsis - i}" for i in range(ellipsis)), *after]


def _per_output(cost: int) -> Callable[[ir.Node], int]:
    return lambda node: cost * _out_elems(node)


def _variadic(node: ir.Node) -> int:
    return max(1, len(node.inputs) - 1) * _out_elems(node)


def _pool(node: ir.Node) -> int:
    kernel = node.attributes.get_ints("kernel_shape")
    if kernel is None:
        raise _UnknownShape
    return _out_elems(node) * math.prod(kernel)


def _zero(node: ir.Node) -> int:
    return 0


_ELEMENTWISE = (
    "Abs Acos Acosh Add And Asin Asinh Atan Atanh BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor "
    "Ceil Celu Clip Cos Cosh DequantizeLinear Div Elu Equal Erf Exp Floor Gelu Greater GreaterOrEqual "
    "HardSigmoid HardSwish IsInf IsNaN LeakyRelu Less LessOrEqual Log Mish Mod Mul Neg Not Or PRelu Pow "
    "QuantizeLinear Reciprocal Relu Round Selu Shrink Sigmoid Sign Sin Sinh Softplus Softsign Sqrt Sub "
    "Tan Tanh ThresholdedRelu Where Xor"
).split()
_PER_INPUT = (
    "ArgMax ArgMin CumSum GlobalAveragePool GlobalLpPool GlobalMaxPool ReduceL1 ReduceL2 ReduceLogSum "
    "ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare"
).split()
_DATA_MOVEMENT = (
    "Cast CastLike CenterCropPad Compress Concat ConcatFromSequence Constant ConstantOfShape DepthToSpace "
    "Dropout Expand EyeLike Flatten Gather GatherElements GatherND Identity If Loop NonZero OneHot Optional "
    "OptionalGetElement OptionalHasElement Pad Range Reshape ReverseSequence Scan Scatter ScatterElements "
    "ScatterND SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength Shape "
    "Size Slice SpaceToDepth Split SplitToSequence Squeeze Tile Transpose Trilu Unsqueeze"
).split()

_RULES: dict[str, Callable[[ir.Node], int]] = {
    **{op: _per_output(1) for op in _ELEMENTWISE},
    **{op: _in_elems for op in _PER_INPUT},
    **{op: _zero for op in _DATA_MOVEMENT},
    **{op: _variadic for op in ("Max", "Mean", "Min", "Sum")},
    **{op: _pool for op in ("AveragePool", "LpPool", "MaxPool")},
    "BatchNormalization": _per_output(2),
    "Softmax": _per_output(5),
    "LogSoftmax": _per_output(5),
    "LayerNormalization": _per_output(8),
    "InstanceNormalization": _per_output(8),
    "GroupNormalization": _per_output(8),
    "Conv": _conv(weight=1, bias=2),
    "ConvInteger": _conv(weight=1, bias=None),
    "QLinearConv": _conv(weight=3, bias=8),
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul(0, 1),
    "MatMulInteger": _matmul(0, 1),
    "QLinearMatMul": _matmul(0, 3),
    "Einsum": _einsum,
}
