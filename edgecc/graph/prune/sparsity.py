"""Weight sparsity: unstructured magnitude pruning, and 2:4 semi-structured sparsity for sparse tensor cores.

The zeros stay in dense tensors (ONNX has no sparse-weight convention backends read); what is sparse
is recorded in the model's metadata under ``edgecc.sparsity`` so a backend that can use it (TensorRT's
SPARSE_WEIGHTS on Ampere/Orin) turns it on. 2:4 groups run along the reduction axis (a Conv's input
channels, a Gemm/MatMul's K), as sparse tensor cores need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ...errors import BadInputError
from ..rewrite._util import const_array
from ..weights import InitializerWriter

METADATA_KEY = "edgecc.sparsity"
PATTERNS = ("unstructured", "2:4")


@dataclass
class SparseLayer:
    node: str
    op_type: str
    params: int
    zeros: int

    def to_json(self) -> dict[str, object]:
        return {"node": self.node, "op_type": self.op_type, "params": self.params, "zeros": self.zeros}


@dataclass
class SparsityResult:
    pattern: str
    ratio: float
    layers: list[SparseLayer] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        total = sum(l.params for l in self.layers)
        return sum(l.zeros for l in self.layers) / total if total else 0.0

    def to_json(self) -> dict[str, object]:
        return {"pattern": self.pattern, "ratio": self.ratio, "sparsity": self.sparsity,
                "layers": [l.to_json() for l in self.layers], "skipped": dict(self.skipped)}


def _weight_and_axis(node: ir.Node) -> tuple[np.ndarray, int] | str:
    """The constant weight of a Conv/Gemm/MatMul and its reduction (input-channel) axis, or why not."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in ("Conv", "Gemm", "MatMul"):
        return "not a weighted layer"
    w = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if w is None or w.dtype.kind != "f":
        return "weights are not a float constant"
    if node.op_type == "Conv":
        return w, 1
    if w.ndim != 2:
        return "weight is not 2-D"
    if node.op_type == "Gemm":
        return w, 1 if node.attributes.get_int("transB", 0) else 0
    return w, 0


def _two_of_four(w: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(w, axis, -1)
    groups = moved.reshape(-1, 4)
    order = np.argsort(np.abs(groups), axis=1, kind="stable")
    mask = np.ones_like(groups, dtype=bool)
    np.put_along_axis(mask, order[:, :2], False, axis=1)
    return np.moveaxis((groups * mask).reshape(moved.shape), -1, axis)


def sparsify_model(model: ir.Model, pattern: str, ratio: float) -> SparsityResult:
    """Zero weights in place: per layer, the ``ratio`` smallest in magnitude (unstructured), or the two smallest
    of every four along the reduction axis (2:4, ratio must be 0.5). Layers whose reduction axis is not a
    multiple of 4 are skipped for 2:4, and named in the result."""
    if pattern not in PATTERNS:
        raise BadInputError(f"unknown --pattern '{pattern}'; known: {', '.join(PATTERNS)}")
    if not 0.0 < ratio < 1.0:
        raise BadInputError(f"--ratio must be between 0 and 1 (exclusive), got {ratio:g}")
    if pattern == "2:4" and ratio != 0.5:
        raise BadInputError(f"2:4 sparsity removes exactly half the weights: --ratio must be 0.5, got {ratio:g}")
    writer = InitializerWriter(model.graph)
    result = SparsityResult(pattern, ratio)
    for node in model.graph:
        found = _weight_and_axis(node)
        if isinstance(found, str):
            if node.op_type in ("Conv", "Gemm", "MatMul"):
                result.skipped[node.name or node.op_type] = found
            continue
        w, axis = found
        if pattern == "2:4":
            if w.shape[axis] % 4:
                result.skipped[node.name] = f"reduction axis of {w.shape[axis]} is not a multiple of 4"
                continue
            new = _two_of_four(w, axis)
        else:
            k = int(round(w.size * ratio))
            flat = np.abs(w).reshape(-1)
            cut = np.partition(flat, k - 1)[k - 1] if k > 0 else -1
            new = np.where(np.abs(w) <= cut, 0, w).astype(w.dtype)
            # ties at the cut may zero a few more than k; keep the count exact
            extra = int((new == 0).sum() - (w == 0).sum()) - k
            if extra > 0:
                idx = np.flatnonzero((np.abs(w).reshape(-1) == cut) & (w.reshape(-1) != 0))[:extra]
                new.reshape(-1)[idx] = w.reshape(-1)[idx]
        writer.replace_input(node, 1, new.astype(w.dtype), "_sparse")
        result.layers.append(SparseLayer(node.name, node.op_type, int(w.size), int((new == 0).sum())))
    model.metadata_props[METADATA_KEY] = json.dumps({
        "pattern": pattern, "ratio": ratio, "layers": [l.node for l in result.layers],
    })
    return result
