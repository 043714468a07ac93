"""Conv followed by Mul or Add with a per-channel (or scalar) constant -> one Conv with scaled weights / bias.

onnxscript's ConvAffineFusion needs both a Mul and an Add, scalar constants and an existing bias; exported
models often have just one of them, per channel (a folded normalisation, a learned scale).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from .._util import const_array, fresh_initializer


def _per_channel(value: ir.Value, out: ir.Value, channels: int) -> np.ndarray | str:
    """The constant as a [channels] vector when it broadcasts per channel over NCHW output, else why not."""
    c = const_array(value)
    if c is None:
        return f"'{value.name}' is not a constant"
    rank = len(out.shape) if out.shape is not None else None
    if rank is None:
        return f"the rank of '{out.name}' is unknown"
    if c.size == 1:
        return np.full(channels, c.reshape(()), dtype=c.dtype)
    if c.ndim > rank:
        return f"'{value.name}' has rank {c.ndim}, more than the Conv output's {rank}"
    shape = (1,) * (rank - c.ndim) + c.shape
    if shape[1] != channels or any(d != 1 for i, d in enumerate(shape) if i != 1):
        return f"'{value.name}' of shape {list(c.shape)} does not broadcast per channel over {channels} channels"
    return c.reshape(channels)


class _ConvThenConstant(RewriteRuleClassBase):
    op_type = ""

    def pattern(self, op, x, w, c):
        conv = op.Conv(x, w, _allow_other_inputs=True, _outputs=["conv_out"])
        return getattr(op, self.op_type)(conv, c)

    def check(self, context, x, w, c, conv_out, **_):
        result = MatchResult()
        conv = conv_out.producer()
        weights = const_array(w)
        if weights is None:
            return result.fail(f"Conv '{conv.name}': weight '{w.name}' is not a constant", w)
        if len(conv.inputs) > 2 and conv.inputs[2] is not None and const_array(conv.inputs[2]) is None:
            return result.fail(f"Conv '{conv.name}': bias is not a constant")
        if len(conv_out.uses()) != 1:
            return result.fail(f"Conv '{conv.name}' output is used by {len(conv_out.uses())} nodes, not only this {self.op_type}")
        if conv_out.is_graph_output():
            return result.fail(f"Conv '{conv.name}' output is a graph output")
        vec = _per_channel(c, conv_out, weights.shape[0])
        if isinstance(vec, str):
            return result.fail(vec, c)
        if vec.dtype != weights.dtype:
            return result.fail(f"constant dtype {vec.dtype} differs from the weights' {weights.dtype}")
        self._vec = vec
        return result

    def _conv(self, op, x, weights, bias, conv):
        name = conv.inputs[1].name or "w"
        return op.Conv(
            x,
            fresh_initializer(op, conv.graph, weights, f"{name}_{self.op_type.lower()}"),
            fresh_initializer(op, conv.graph, bias, f"{name}_bias_{self.op_type.lower()}"),
            **conv.attributes,
        )


def _bias(conv: ir.Node, channels: int, dtype) -> np.ndarray:
    if len(conv.inputs) > 2 and conv.inputs[2] is not None:
        return const_array(conv.inputs[2])
    return np.zeros(channels, dtype=dtype)


class ConvMulFusion(_ConvThenConstant):
    """Mul(Conv(x, W, b), s) -> Conv(x, W*s, b*s) for a per-channel or scalar constant s."""

    op_type = "Mul"

    def rewrite(self, op, x, w, c, conv_out, **_):
        conv = conv_out.producer()
        weights = const_array(w)
        s = self._vec
        scaled = (weights * s.reshape((-1,) + (1,) * (weights.ndim - 1))).astype(weights.dtype)
        return self._conv(op, x, scaled, (_bias(conv, weights.shape[0], weights.dtype) * s).astype(weights.dtype), conv)


class ConvAddFusion(_ConvThenConstant):
    """Add(Conv(x, W, b), c) -> Conv(x, W, b + c) for a per-channel or scalar constant c."""

    op_type = "Add"

    def rewrite(self, op, x, w, c, conv_out, **_):
        conv = conv_out.producer()
        weights = const_array(w)
        return self._conv(op, x, weights, (_bias(conv, weights.shape[0], weights.dtype) + self._vec).astype(weights.dtype), conv)


rules = [ConvMulFusion.rule(), ConvAddFusion.rule()]
