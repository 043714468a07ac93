"""LayerNorm spelled out as primitives (as legacy torch exports write it) -> LayerNormalization (opset >= 17).

    mean = ReduceMean(x, last axis); d = x - mean; var = ReduceMean(d^2 or d*d, last axis)
    y = d / Sqrt(var + eps) * gamma (+ beta)

onnxscript's LayerNormFusion does not check the opset, the reduced axes of an opset-17 ReduceMean
(an attribute there) or that gamma/beta cover exactly the last axis; this rule does.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase
from onnxscript.rewriter._pattern_ir import OrValue

from .._util import const_array, fresh_initializer

MIN_OPSET = 17


def _reduces_last_axis(node: ir.Node, rank: int) -> bool:
    if node.attributes.get_int("keepdims", 1) != 1:
        return False
    axes = node.attributes.get_ints("axes", None)
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        found = const_array(node.inputs[1])
        axes = None if found is None else [int(a) for a in found.reshape(-1)]
    return axes is not None and len(axes) == 1 and axes[0] % rank == rank - 1


class LayerNormFusion(RewriteRuleClassBase):
    """The decomposed LayerNorm over the last axis; ``affine``: "scale_bias" (Mul by gamma, Add beta),
    "scale" (Mul only) or "none" (simplifiers drop a Mul by ones and an Add of zeros)."""

    def __init__(self, affine: str) -> None:
        super().__init__(name={"scale_bias": "LayerNormFusion", "scale": "LayerNormFusionNoBias", "none": "LayerNormFusionNoAffine"}[affine])
        self.with_scale = affine != "none"
        self.with_bias = affine == "scale_bias"

    def pattern(self, op, x, two, eps, gamma, beta):
        mean = op.ReduceMean(x, _allow_other_inputs=True, _outputs=["mean"])
        d = op.Sub(x, mean)
        squared = OrValue([op.Pow(d, two), op.Mul(d, d)])
        var = op.ReduceMean(squared, _allow_other_inputs=True, _outputs=["var"])
        normed = op.Div(d, op.Sqrt(op.Add(var, eps)))
        if not self.with_scale:
            return normed
        scaled = op.Mul(normed, gamma)
        return op.Add(scaled, beta) if self.with_bias else scaled

    def check(self, context, x, two, eps, gamma, beta, mean, var, **_):
        result = MatchResult()
        opset = context.model.opset_imports.get("", 0)
        if opset < MIN_OPSET:
            return result.fail(f"model opset {opset} < {MIN_OPSET}: LayerNormalization is not available")
        if x.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE, ir.DataType.BFLOAT16):
            return result.fail(f"input dtype {x.dtype} is not a float type LayerNormalization accepts", x)
        if x.shape is None or not isinstance(x.shape[-1], int):
            return result.fail(f"the last dimension of '{x.name}' is not static", x)
        rank, width = len(x.shape), x.shape[-1]
        for node in (mean.producer(), var.producer()):
            if not _reduces_last_axis(node, rank):
                return result.fail(f"ReduceMean '{node.name}' does not reduce only the last axis with keepdims=1", node)
        if two is not None and (t := const_array(two)) is not None and not (t.size == 1 and float(t.reshape(())) == 2.0):
            return result.fail("the power is not the constant 2", two)
        if two is not None and const_array(two) is None:
            return result.fail("the power is not a constant", two)
        e = const_array(eps)
        if e is None or e.size != 1:
            return result.fail("epsilon is not a constant scalar", eps)
        params = ([("gamma", gamma)] if self.with_scale else []) + ([("beta", beta)] if self.with_bias else [])
        for label, value in params:
            arr = const_array(value)
            if arr is None:
                return result.fail(f"{label} '{value.name}' is not a constant", value)
            if arr.ndim > rank or not (arr.size == 1 or (arr.shape[-1] == width and arr.size == width)):
                return result.fail(f"{label} of shape {list(arr.shape)} does not cover exactly the last axis ({width})", value)
            if arr.dtype != x.dtype.numpy():
                return result.fail(f"{label} dtype {arr.dtype} differs from the input's", value)
        self._eps = float(e.reshape(()))
        self._width = width
        return result

    def rewrite(self, op, x, gamma, beta, **_):
        graph = x.graph
        if self.with_scale:
            g = np.broadcast_to(const_array(gamma).reshape(-1), (self._width,)).astype(const_array(gamma).dtype)
        else:
            g = np.ones(self._width, dtype=x.dtype.numpy())
        inputs = [x, fresh_initializer(op, graph, g, (gamma.name if self.with_scale else x.name or "ln") + "_ln_scale")]
        if self.with_bias:
            b = np.broadcast_to(const_array(beta).reshape(-1), (self._width,)).astype(g.dtype)
            inputs.append(fresh_initializer(op, graph, b, (beta.name or "ln") + "_ln_bias"))
        return op.LayerNormalization(*inputs, axis=-1, epsilon=self._eps)


rules = [LayerNormFusion.rule(affine=a) for a in ("scale_bias", "scale", "none")]
