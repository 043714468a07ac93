"""Keep chosen layers of a QDQ model in float: their inputs bypass Q/DQ and their weights are the float ones.

In a QDQ model a layer runs in INT8 because DequantizeLinear feeds every input it has (onnxruntime
fuses DQ -> Conv -> Q into QLinearConv; OpenVINO turns the Q/DQ pairs into FakeQuantize and runs the
op in int8). A layer whose inputs are plain float tensors runs in float on both. Reverting a layer:

- a weight or bias input fed by DequantizeLinear of an initializer gets the float model's own tensor
  (matched by node name and input index);
- an activation input fed by Q -> DQ gets the tensor Q quantised. onnxruntime's quantiser drops a
  ReLU/Clip before a Q when the Q's range already clips (the producing Conv then writes the ReLU's
  output name but pre-ReLU values), so the float model's ops between the two tensors (ReLU, Clip...)
  are re-inserted for the reverted layer;
- its output keeps its Q/DQ (the INT8 layers after it read it) unless only the graph output reads it.

Q/DQ nodes and initializers left unused are removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from ...errors import BadInputError
from ..rewrite._util import const_array
from ..weights import InitializerWriter
from ._session import nodes_by_name

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# Ops that only move or select values: keeping them in float changes nothing worth a candidate's cost.
MOVEMENT_OPS = frozenset({"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather", "Slice",
                          "Split", "Identity", "Resize", "Pad", "DepthToSpace", "SpaceToDepth", "Expand", "Tile"})
# Element-wise ops the quantiser may fold into the Q range; what may lie between a Q's input and the float input.
FOLDABLE_OPS = frozenset({"Relu", "Clip", "LeakyRelu"})


@dataclass
class RevertResult:
    model: ir.Model
    reverted: list[str]
    notes: list[str] = field(default_factory=list)


def _is_standard(node: ir.Node | None, ops) -> bool:
    return node is not None and node.domain in ("", "ai.onnx") and node.op_type in ops


def quantized_layers(qmodel: ir.Model, *, include_movement: bool = False) -> list[str]:
    """Names of the nodes of ``qmodel`` that read a DequantizeLinear output (the layers running in INT8), in
    graph order; data-movement ops (MaxPool, Reshape...) only with ``include_movement``."""
    names = []
    for node in qmodel.graph:
        if node.op_type in QDQ_OPS or (node.op_type in MOVEMENT_OPS and not include_movement):
            continue
        if any(_is_standard(v.producer() if v is not None else None, ("DequantizeLinear",)) for v in node.inputs):
            if not node.name:
                continue
            names.append(node.name)
    return names


def _float_input(twin_value: ir.Value, start: ir.Value, start_twin: ir.Value | None, graph: ir.Graph,
                 writer: InitializerWriter) -> ir.Value | None:
    """``start`` (a float tensor of the QDQ model) carried through copies of the float model's foldable ops
    that lie between ``start_twin`` (its counterpart) and ``twin_value``; None when no such chain exists."""
    chain, cur = [], twin_value
    while cur is not start_twin:
        prod = cur.producer()
        if prod is None or not _is_standard(prod, FOLDABLE_OPS) or len(chain) > 4:
            return None
        chain.append(prod)
        cur = prod.inputs[0]
    value = start
    for op in reversed(chain):
        extra = []
        for v in op.inputs[1:]:
            arr = const_array(v) if v is not None else None
            if v is not None and arr is None:
                return None
            extra.append(None if v is None else writer.new(arr, (v.name or "c") + "_float"))
        node = ir.Node(op.domain, op.op_type, [value, *extra], attributes=[ir.Attr(a.name, a.type, a.value) for a in op.attributes.values()],
                       name=f"{op.name}_float", num_outputs=1)
        graph.append(node)
        node.outputs[0].name = f"{op.outputs[0].name}_float"
        node.outputs[0].dtype, node.outputs[0].shape = value.dtype, value.shape
        value = node.outputs[0]
    return value


def _twin_of(value: ir.Value, floats: dict[str, ir.Node], float_model: ir.Model) -> ir.Value | None:
    """The float model's tensor that ``value`` (a float tensor of the QDQ model) stands for."""
    prod = value.producer()
    if prod is None:
        return next((v for v in float_model.graph.inputs if v.name == value.name), None)
    twin = floats.get(prod.name)
    if twin is None or len(twin.outputs) != len(prod.outputs):
        return None
    return twin.outputs[list(prod.outputs).index(value)]


def _revert_inputs(node, twin, floats, float_model, graph, writer, notes) -> None:
    for i, v in enumerate(list(node.inputs)):
        dq = v.producer() if v is not None else None
        if not _is_standard(dq, ("DequantizeLinear",)) or i >= len(twin.inputs) or twin.inputs[i] is None:
            continue
        want = twin.inputs[i]
        arr = const_array(want)
        if arr is not None:
            node.replace_input_with(i, writer.new(arr, (want.name or node.name) + "_float"))
            continue
        q = dq.inputs[0].producer()
        if not _is_standard(q, ("QuantizeLinear",)):
            notes.append(f"{node.name}: input {i} is dequantised from a tensor no QuantizeLinear makes; kept INT8")
            continue
        start = q.inputs[0]
        start_twin = _twin_of(start, floats, float_model)
        new = None if start_twin is None else _float_input(want, start, start_twin, graph, writer)
        if new is None:
            notes.append(f"{node.name}: input {i}'s float value cannot be rebuilt from the QDQ model; kept INT8")
            continue
        node.replace_input_with(i, new)


def _unquantize_graph_outputs(node: ir.Node, graph: ir.Graph) -> None:
    """Where the reverted ``node``'s output reaches a graph output only through Q -> DQ, it becomes the output."""
    for out in node.outputs:
        for q, _ in list(out.uses()):
            if not _is_standard(q, ("QuantizeLinear",)):
                continue
            for dq, _ in list(q.outputs[0].uses()):
                res = dq.outputs[0]
                if not _is_standard(dq, ("DequantizeLinear",)) or not res.is_graph_output() or list(res.uses()):
                    continue
                if out.is_graph_output() or len(list(out.uses())) != 1:
                    continue
                idx = list(graph.outputs).index(res)
                name = res.name
                res.name = f"{name}_int8"
                out.name = name
                if out.type is None:
                    out.type, out.shape = res.type, res.shape
                graph.outputs[idx] = out


def keep_in_float(qmodel: ir.Model, float_model: ir.Model, layers: list[str] | tuple[str, ...]) -> RevertResult:
    """A copy of ``qmodel`` (a QDQ model quantised from ``float_model``) in which ``layers`` (node names) run
    in float. BadInputError names a layer that is not in both models."""
    model = qmodel.clone()
    floats, nodes = nodes_by_name(float_model), nodes_by_name(model)
    missing = [n for n in layers if n not in nodes or n not in floats]
    if missing:
        raise BadInputError(f"layers not in both the QDQ and the float model: {', '.join(missing[:5])}")
    writer, notes = InitializerWriter(model.graph), []
    for name in layers:
        _revert_inputs(nodes[name], floats[name], floats, float_model, model.graph, writer, notes)
        _unquantize_graph_outputs(nodes[name], model.graph)
    ir.passes.common.TopologicalSortPass()(model)
    RemoveUnusedNodesPass()(model)
    return RevertResult(model, list(layers), notes)
