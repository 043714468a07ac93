"""Cut a model's weights to a pruning plan, so that it is physically smaller on every backend."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import common as common_passes

from ..io import infer_shapes
from ..rewrite._util import const_array
from ..weights import InitializerWriter
from .handlers import HANDLERS
from .plan import PruningPlan


class Editor:
    """What handlers see while materialising: kept channel positions of each tensor, and how to replace a constant."""

    def __init__(self, plan: PruningPlan, means: dict[str, np.ndarray] | None = None) -> None:
        self.plan = plan
        self.g = plan.graph
        self.means = means or {}
        self._kept: dict[ir.Value, np.ndarray | None] = {}
        self._writer = InitializerWriter(self.g.model.graph)

    def mean(self, value: ir.Value) -> np.ndarray | None:
        """Per-channel mean of ``value`` before pruning, when measured (prune.compensate)."""
        return self.means.get(value.name)

    def has_map(self, value: ir.Value | None) -> bool:
        return value is not None and value in self.g.maps

    def axis(self, value: ir.Value) -> int:
        return self.g.maps[value].axis

    def length(self, value: ir.Value) -> int:
        return len(self.g.maps[value])

    def kept(self, value: ir.Value | None) -> np.ndarray | None:
        """Positions kept along ``value``'s channel axis; None when it has no channels or keeps them all."""
        if value is None or value not in self.g.maps:
            return None
        if value not in self._kept:
            m = self.g.maps[value]
            mask = np.array([self.plan.keep_root[self.g.find(a)] for a in m.atoms.tolist()], dtype=bool)
            self._kept[value] = None if mask.all() else np.nonzero(mask)[0]
        return self._kept[value]

    def set_const(self, node: ir.Node, index: int, array: np.ndarray) -> None:
        self._writer.replace_input(node, index, array, "_pruned")

    def add_const_input(self, node: ir.Node, array: np.ndarray) -> None:
        node.resize_inputs(len(node.inputs) + 1)
        self.set_const(node, len(node.inputs) - 1, array)

    def slice_broadcast_const(self, node: ir.Node, index: int, rank: int, axis: int, keep: np.ndarray) -> None:
        c = const_array(node.inputs[index])
        if c is None or c.size == 1:
            return
        aligned = axis - (rank - c.ndim)
        if aligned < 0 or c.shape[aligned] == 1:
            return
        self.set_const(node, index, np.take(c, keep, axis=aligned))


def materialise(plan: PruningPlan, means: dict[str, np.ndarray] | None = None) -> ir.Model:
    """Apply ``plan`` to its model in place: slice weights, fix shape constants, re-infer shapes. With
    ``means`` (prune.compensate.measure), removed channels' mean contributions go into biases."""
    model = plan.graph.model
    edit = Editor(plan, means)
    for node in list(model.graph):
        handler = HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if handler is not None:
            handler.materialise(edit, node)
    inputs = set(model.graph.inputs)
    for node in model.graph:
        for v in node.outputs:
            if v not in inputs and not v.is_graph_output():
                v.shape = None
    common_passes.RemoveUnusedNodesPass()(model)
    # Each node got its own cut weights; layers that shared a weight (tied, or identical copies an exporter
    # merged) and kept the same channels share it again.
    common_passes.DeduplicateHashedInitializersPass()(model)
    infer_shapes(model)
    return model
