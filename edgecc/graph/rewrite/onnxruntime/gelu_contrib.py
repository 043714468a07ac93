"""Exact GELU spelled out -> com.microsoft Gelu, for opsets before 20 where ONNX has no Gelu.

Same patterns and checks as the common Gelu rule, but the replacement is onnxruntime's contrib op,
which only onnxruntime runs: this lives in the onnxruntime pack.
"""

from __future__ import annotations

from onnxscript.rewriter import MatchResult

from ..common.gelu import MIN_OPSET, GeluFusion, _is


class GeluContribFusion(GeluFusion):
    def __init__(self, order: str) -> None:
        super().__init__(order)
        self.name = f"GeluContribFusion_{order}"

    def check(self, context, x, s, one, half, **_):
        result = MatchResult()
        opset = context.model.opset_imports.get("", 0)
        if opset >= MIN_OPSET:
            return result.fail(f"model opset {opset} has ONNX Gelu; the common rule applies")
        for value, expected, what in ((s, 2.0**0.5, "sqrt(2)"), (one, 1.0, "1"), (half, 0.5, "0.5")):
            if not _is(value, expected):
                return result.fail(f"constant is not {what}", value)
        return result

    def rewrite(self, op, x, **_):
        return op.Gelu(x, _domain="com.microsoft")


rules = [GeluContribFusion.rule(order=o) for o in ("xh", "x_h", "h_x")]
