"""``--optimize`` as a graph step of compile/compare/search: edgecc optimize's pipeline."""

from __future__ import annotations

from typing import ClassVar

import onnx_ir as ir

from ..step import GraphStep, StepContext


class OptimizeStep(GraphStep):
    """Cleanup, constant folding, onnxsim and the common fusion rules."""

    name: ClassVar[str] = "optimize"
    flag: ClassVar[str] = "--optimize"
    help: ClassVar[str] = "run edgecc optimize's graph pipeline first"
    value_type: ClassVar[type] = bool

    def apply(self, model: ir.Model, value: object, ctx: StepContext) -> str:
        from .optimize import optimize_model

        result = optimize_model(model)
        return f"optimize(nodes={result.nodes_before}->{result.nodes_after})"
