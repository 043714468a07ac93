"""Small helpers the rule modules share: constants, opset version."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's constant tensor as numpy (initializer or Constant output), else None."""
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def onnx_opset(model_or_graph_opsets: dict[str, int]) -> int:
    return model_or_graph_opsets.get("", model_or_graph_opsets.get("ai.onnx", 0))


def is_private(value: ir.Value, allowed: set[ir.Node]) -> bool:
    """True when no node outside ``allowed`` uses ``value`` and it is not a graph output."""
    return not value.is_graph_output() and all(user in allowed for user, _ in value.uses())


def fresh_initializer(op, graph: ir.Graph | None, array: np.ndarray, base: str) -> ir.Value:
    """A new initializer through the rewrite builder ``op``, under a name no initializer of ``graph`` has
    (onnxscript replaces an initializer of the same name, which would break its other users)."""
    from ..weights import unique_name

    name = unique_name(graph.initializers if graph is not None else {}, base)
    return op.initializer(ir.tensor(np.ascontiguousarray(array)), name=name)


def with_min_opset(cls, opset: int, op_name: str):
    """A subclass of the rule class ``cls`` whose check first declines below ONNX opset ``opset`` (when the op
    its rewrite emits, ``op_name``, does not exist yet), then runs ``cls``'s own check."""
    from onnxscript.rewriter import MatchResult

    class Guarded(cls):
        def check(self, context, *args, **kwargs):
            found = context.model.opset_imports.get("", 0)
            if found < opset:
                return MatchResult().fail(f"model opset {found} < {opset}: {op_name} is not available")
            return super().check(context, *args, **kwargs)

    Guarded.__name__ = Guarded.__qualname__ = cls.__name__
    return Guarded
