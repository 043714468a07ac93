"""``--lowrank E`` as a graph step of compile/compare/search: truncated-SVD factorisation where FLOPs drop."""

from __future__ import annotations

from typing import ClassVar

import onnx_ir as ir

from ...errors import BadInputError
from ..step import GraphStep, StepContext


class LowRankStep(GraphStep):
    """Factorise Gemm/MatMul weights and 1x1 Convs keeping ``energy`` of the spectrum."""

    name: ClassVar[str] = "lowrank"
    flag: ClassVar[str] = "--lowrank"
    help: ClassVar[str] = "low-rank factorise first, keeping this energy (edgecc lowrank)"
    search_help: ClassVar[str] = "comma-separated low-rank energies to try; 'off' is unfactorised"

    def check(self, value: object) -> None:
        if not 0.0 < float(value) <= 1.0:
            raise BadInputError(f"--lowrank must be in (0, 1], got {value:g}")

    def check_in_list(self, value: float) -> None:
        if not 0.0 < value <= 1.0:
            raise BadInputError(f"--lowrank: every energy must be 'off' or in (0, 1], got {value:g}")

    def order(self, value: object) -> float:
        return -(2.0 if value is None else float(value))  # off, then the energies that keep most

    def apply(self, model: ir.Model, value: object, ctx: StepContext) -> str:
        from onnx_ir.passes.common import RemoveUnusedNodesPass

        from ..io import infer_shapes
        from .svd import factorize_model

        result = factorize_model(model, float(value))
        RemoveUnusedNodesPass()(model)
        infer_shapes(model)
        return f"lowrank(energy={value:g},layers={len(result.layers)})"
