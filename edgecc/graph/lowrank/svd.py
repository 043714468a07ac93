"""Truncated SVD of weights: W [K, N] ~ A [K, r] @ B [r, N], keeping the smallest rank r whose singular
values hold ``energy`` of the spectrum (sum of squares), applied only where r * (K + N) < K * N, so
the factorised layer needs fewer FLOPs and parameters.

Gemm/MatMul with a constant 2-D weight become two MatMuls (or MatMul + Gemm, keeping C, alpha, beta);
a 1x1 Conv (group 1) becomes two 1x1 Convs, the first with the original strides and pads, the second
with the bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ...errors import BadInputError
from ..rewrite._util import const_array
from ..weights import InitializerWriter


@dataclass
class LowRankLayer:
    node: str
    op_type: str
    shape: tuple[int, int]  # (K, N)
    rank: int
    weight_error: float  # ||W - AB||_F / ||W||_F

    def to_json(self) -> dict[str, object]:
        return {"node": self.node, "op_type": self.op_type, "k": self.shape[0], "n": self.shape[1], "rank": self.rank,
                "weight_error": self.weight_error}


@dataclass
class LowRankResult:
    energy: float
    layers: list[LowRankLayer] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"energy": self.energy, "layers": [l.to_json() for l in self.layers], "skipped": dict(self.skipped)}


def _kn(node: ir.Node) -> tuple[np.ndarray, str] | str:
    """The weight as [K, N] (input features x output features) and the layer kind, or why it is not factorised."""
    if node.domain not in ("", "ai.onnx"):
        return "custom domain"
    w = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if w is None or w.dtype.kind != "f":
        return "weights are not a float constant"
    if node.op_type == "MatMul":
        return (w, "matmul") if w.ndim == 2 else "weight is not 2-D"
    if node.op_type == "Gemm":
        if w.ndim != 2:
            return "weight is not 2-D"
        return (w.T if node.attributes.get_int("transB", 0) else w), "gemm"
    if node.op_type == "Conv":
        if w.ndim != 4 or w.shape[2:] != (1, 1) or node.attributes.get_int("group", 1) != 1:
            return "not a 1x1 Conv with group 1"
        return w[:, :, 0, 0].T, "conv"
    return "not a weighted layer"


def _rank_for(s: np.ndarray, energy: float) -> int:
    share = np.cumsum(s.astype(np.float64) ** 2)
    share /= share[-1] if share[-1] > 0 else 1.0
    return int(np.searchsorted(share, energy - 1e-12) + 1)


def factorize_model(model: ir.Model, energy: float) -> LowRankResult:
    """Factorise, in place, every layer where the rank holding ``energy`` lowers FLOPs."""
    if not 0.0 < energy <= 1.0:
        raise BadInputError(f"--energy must be in (0, 1], got {energy:g}")
    writer = InitializerWriter(model.graph)
    result = LowRankResult(energy)
    for node in list(model.graph):
        if node.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        found = _kn(node)
        if isinstance(found, str):
            result.skipped[node.name or node.op_type] = found
            continue
        w, kind = found
        k, n = w.shape
        u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
        r = _rank_for(s, energy)
        if r * (k + n) >= k * n:
            result.skipped[node.name] = f"rank {r} of [{k}x{n}] would not lower FLOPs"
            continue
        root = np.sqrt(s[:r])
        a = (u[:, :r] * root).astype(w.dtype)  # [K, r]
        b = (root[:, None] * vt[:r]).astype(w.dtype)  # [r, N]
        err = float(np.linalg.norm(w - a.astype(np.float64) @ b) / (np.linalg.norm(w) or 1.0))
        _replace(model.graph, writer, node, kind, a, b)
        result.layers.append(LowRankLayer(node.name, node.op_type, (k, n), r, err))
    return result


def _replace(graph: ir.Graph, writer: InitializerWriter, node: ir.Node, kind: str, a: np.ndarray, b: np.ndarray) -> None:
    base = node.inputs[1].name or node.name or "w"
    x, out = node.inputs[0], node.outputs[0]
    attrs = node.attributes
    if kind == "matmul":
        first = ir.node("MatMul", [x, writer.new(a, base + "_lr_a")], name=f"{node.name or base}_lr_a")
        second = ir.node("MatMul", [first.outputs[0], writer.new(b, base + "_lr_b")], name=f"{node.name or base}_lr_b")
    elif kind == "gemm":
        trans_a = attrs.get_int("transA", 0)
        first = ir.node("Gemm", [x, writer.new(a, base + "_lr_a")], attributes={"transA": trans_a}, name=f"{node.name or base}_lr_a")
        rest = [node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] is not None else []
        second = ir.node("Gemm", [first.outputs[0], writer.new(b, base + "_lr_b"), *rest],
                         attributes={"alpha": attrs.get_float("alpha", 1.0), "beta": attrs.get_float("beta", 1.0)},
                         name=f"{node.name or base}_lr_b")
    else:
        conv_attrs = {k: v for k, v in attrs.items()}
        wa = a.T[:, :, None, None]  # [r, C_in, 1, 1]
        wb = b.T[:, :, None, None]  # [C_out, r, 1, 1]
        first = ir.node("Conv", [x, writer.new(np.ascontiguousarray(wa), base + "_lr_a")], attributes=conv_attrs,
                        name=f"{node.name or base}_lr_a")
        rest = [node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] is not None else []
        second = ir.node("Conv", [first.outputs[0], writer.new(np.ascontiguousarray(wb), base + "_lr_b"), *rest],
                         attributes={"kernel_shape": [1, 1]}, name=f"{node.name or base}_lr_b")
    graph.insert_before(node, [first, second])
    name, new = out.name, second.outputs[0]
    new.shape, new.type = out.shape, out.type
    out.replace_all_uses_with(new, replace_graph_outputs=True)
    graph.remove(node, safe=True)
    new.name = name
