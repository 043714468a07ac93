"""Replacing a node's constant input with a new initializer, without touching other nodes that share it."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir


def unique_name(taken, base: str) -> str:
    """``base``, or ``base_1``, ``base_2``... whichever ``taken`` (a container of names) does not hold yet."""
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


class InitializerWriter:
    """Registers new initializers in ``graph`` under names no other initializer has."""

    def __init__(self, graph: ir.Graph) -> None:
        self.graph = graph
        self._taken = set(graph.initializers)

    def new(self, array: np.ndarray, base: str) -> ir.Value:
        name = unique_name(self._taken, base)
        self._taken.add(name)
        # (np.ascontiguousarray alone makes a scalar 1-D: the initializer would contradict its value's shape)
        tensor = ir.tensor(np.ascontiguousarray(array).reshape(np.shape(array)), name=name)
        value = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(tensor.dtype), const_value=tensor)
        self.graph.register_initializer(value)
        return value

    def replace_input(self, node: ir.Node, index: int, array: np.ndarray, suffix: str) -> ir.Value:
        """Give ``node`` a new initializer at input ``index`` (the old one may be shared with other nodes)."""
        old = node.inputs[index]
        value = self.new(array, (old.name if old is not None and old.name else node.name or "w") + suffix)
        node.replace_input_with(index, value)
        return value
