"""x*1, x+0, x-0, x/1 with exactly those constants, and inference-mode Dropout, removed.

onnxscript's no-op rules compare constants with a tolerance, so Add(var, 1e-12) (a LayerNorm epsilon)
counts as +0 for them and is dropped, which changes the function near zero variance. These compare
exactly, and also require that the constant does not broadcast x to a larger shape.
"""

from __future__ import annotations

import numpy as np
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from .._util import const_array

_NEUTRAL = {"Mul": 1.0, "Add": 0.0, "Sub": 0.0, "Div": 1.0}


class NeutralConstant(RewriteRuleClassBase):
    """``op_type``(x, c) where c is a constant equal everywhere to the op's neutral element."""

    def __init__(self, op_type: str) -> None:
        super().__init__(name={"Mul": "MulByOne", "Add": "AddZero", "Sub": "SubZero", "Div": "DivByOne"}[op_type])
        self.op_type = op_type

    def pattern(self, op, x, c):
        return getattr(op, self.op_type)(x, c, _outputs=["out"])

    def check(self, context, x, c, out, **_):
        result = MatchResult()
        arr = const_array(c)
        if arr is None:
            return result.fail("the other operand is not a constant", c)
        if arr.size == 0 or not np.all(arr == _NEUTRAL[self.op_type]):
            return result.fail(f"the constant is not exactly {_NEUTRAL[self.op_type]:g} everywhere", c)
        if x.shape is None or out.shape is None or x.shape != out.shape:
            return result.fail("the constant may broadcast the input to a larger shape (shapes unknown or differ)", out)
        if x.dtype != out.dtype:
            return result.fail("the output dtype differs from the input's", out)
        return result

    def rewrite(self, op, x, **_):
        return op.Identity(x)


class InferenceDropout(RewriteRuleClassBase):
    """Dropout with training_mode absent or a constant false and a single output used: the identity."""

    def pattern(self, op, x):
        return op.Dropout(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context, x, out, **_):
        result = MatchResult()
        node = out.producer()
        if len(node.outputs) > 1 and node.outputs[1] is not None and node.outputs[1].uses():
            return result.fail("the mask output is used", node)
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            mode = const_array(node.inputs[2])
            if mode is None or bool(mode.reshape(())):
                return result.fail("training_mode is not a constant false", node.inputs[2])
        return result

    def rewrite(self, op, x, **_):
        return op.Identity(x)


rules = [NeutralConstant.rule(op_type=t) for t in _NEUTRAL] + [InferenceDropout.rule()]
