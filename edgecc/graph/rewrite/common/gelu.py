"""Exact GELU spelled out, x * 0.5 * (1 + erf(x / sqrt(2))), -> Gelu (ONNX opset >= 20).

Three association orders occur in exports; commuted operand orders are covered by the fusion pass.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from .._util import const_array

MIN_OPSET = 20


def _is(value: ir.Value, expected: float) -> bool:
    arr = const_array(value)
    return arr is not None and arr.size == 1 and bool(np.isclose(float(arr.reshape(())), expected, rtol=1e-6, atol=0))


class GeluFusion(RewriteRuleClassBase):
    """``order``: "xh" Mul(Mul(x, 1+erf), half); "x_h" Mul(Mul(x, half), 1+erf); "h_x" Mul(x, Mul(1+erf, half))."""

    def __init__(self, order: str) -> None:
        super().__init__(name=f"GeluFusion_{order}")
        self.order = order

    def pattern(self, op, x, s, one, half):
        erf1 = op.Add(op.Erf(op.Div(x, s)), one)
        if self.order == "xh":
            return op.Mul(op.Mul(x, erf1), half)
        if self.order == "x_h":
            return op.Mul(op.Mul(x, half), erf1)
        return op.Mul(x, op.Mul(erf1, half))

    def check(self, context, x, s, one, half, **_):
        result = MatchResult()
        opset = context.model.opset_imports.get("", 0)
        if opset < MIN_OPSET:
            return result.fail(f"model opset {opset} < {MIN_OPSET}: Gelu is not an ONNX op before opset 20")
        if not _is(s, math.sqrt(2.0)):
            return result.fail("the divisor is not the constant sqrt(2)", s)
        if not _is(one, 1.0):
            return result.fail("the added constant is not 1", one)
        if not _is(half, 0.5):
            return result.fail("the scale is not the constant 0.5", half)
        return result

    def rewrite(self, op, x, **_):
        return op.Gelu(x, approximate="none")


rules = [GeluFusion.rule(order=o) for o in ("xh", "x_h", "h_x")]
