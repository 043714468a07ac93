"""Handlers for element-wise ops: unary (with scalar or per-channel extra inputs) and binary/variadic."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ...rewrite._util import const_array
from ..depgraph import ChannelMap
from ._common import Handler, input_at, rank_of, static_dims

# f(0) == 0 for these, so an all-zero channel stays all zero through them.
ZERO_PRESERVING = {
    "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Tanh", "HardSwish", "Gelu", "Erf", "Neg", "Abs", "Sqrt", "Identity",
    "Cast", "Dropout", "Sin", "Asinh", "Atanh", "Asin", "Atan", "Sinh", "Tan", "Sign", "Round", "Floor", "Ceil",
    "Mish", "Softsign", "ThresholdedRelu", "PRelu", "Shrink",
}
UNARY = ZERO_PRESERVING | {
    "Sigmoid", "HardSigmoid", "Exp", "Log", "Softplus", "Reciprocal", "Cos", "Cosh", "Acos", "Acosh", "Not", "IsNaN", "IsInf",
    "Clip",
}


class UnaryHandler(Handler):
    """Element-wise on one tensor; extra inputs (Clip bounds, PRelu slope) must be constants that are scalars
    or per channel (sliced)."""

    def propagate(self, g, node):
        x, out = node.inputs[0], node.outputs[0]
        cin = g.maps.get(x)
        if cin is None:
            return
        rank = rank_of(x)
        for extra in node.inputs[1:]:
            if extra is None:
                continue
            c = const_array(extra)
            if c is None or not _per_channel_ok(c, rank, cin.axis, len(cin)):
                g.pin(x, node, f"{node.op_type} with a non-constant or non-broadcastable extra input")
                return
        zero = cin.zero if node.op_type in ZERO_PRESERVING else np.zeros(len(cin), bool)
        if node.op_type == "Clip":
            lo, hi = (const_array(input_at(node, i)) for i in (1, 2))
            if (lo is not None and float(lo.reshape(-1)[0]) > 0) or (hi is not None and float(hi.reshape(-1)[0]) < 0):
                zero = np.zeros(len(cin), bool)
            else:
                zero = cin.zero
        g.maps[out] = ChannelMap(cin.axis, cin.atoms, zero)

    def materialise(self, edit, node):
        keep = edit.kept(node.inputs[0])
        if keep is None:
            return
        rank = rank_of(node.inputs[0])
        for i in range(1, len(node.inputs)):
            if node.inputs[i] is not None:
                edit.slice_broadcast_const(node, i, rank, edit.axis(node.inputs[0]), keep)


def _per_channel_ok(c: np.ndarray, rank: int | None, axis: int, channels: int) -> bool:
    """``c`` broadcasts against a [.., channels (at axis), ..] tensor without growing it: size 1 there or exactly ``channels``."""
    if c.size == 1:
        return True
    if rank is None or c.ndim > rank:
        return False
    aligned = axis - (rank - c.ndim)
    if aligned < 0:
        return True
    return c.shape[aligned] in (1, channels)


class BinaryHandler(Handler):
    """Add, Sub, Mul, Div, Max, Min, Pow, Sum, Mean: feature maps meeting here have their channels united
    position by position; constants and other tensors must broadcast along the channel axis (size 1) or be
    constants with one value per channel (sliced)."""

    def propagate(self, g, node):
        out = node.outputs[0]
        out_rank = rank_of(out)
        mapped = [(v, g.maps[v]) for v in node.inputs if v is not None and v in g.maps]
        if not mapped:
            return
        if out_rank is None:
            for v, _ in mapped:
                g.pin(v, node, "output rank unknown")
            return
        axes = {m.axis + out_rank - rank_of(v) for v, m in mapped}
        sizes = {len(m) for _, m in mapped}
        if len(axes) != 1 or len(sizes) != 1:
            for v, _ in mapped:
                g.pin(v, node, "inputs carry channels on different axes or of different counts")
            return
        axis, n = axes.pop(), sizes.pop()
        for v in node.inputs:
            if v is None or v in g.maps:
                continue
            rank = rank_of(v)
            c = const_array(v)
            dims = static_dims(v)
            if c is not None:
                ok = _per_channel_ok(c, out_rank, axis, n)
            else:
                aligned = None if rank is None else axis - (out_rank - rank)
                ok = dims is not None and (aligned is None or aligned < 0 or dims[aligned] == 1)
            if not ok:
                for mv, _ in mapped:
                    g.pin(mv, node, f"{node.op_type} with a tensor that does not broadcast along the channel axis")
                return
        first = mapped[0][1]
        for _, m in mapped[1:]:
            g.unite(first.atoms, m.atoms)
        zeros = [m.zero for _, m in mapped]
        const_zero = [_const_zero(v, out_rank, axis, n) for v in node.inputs if v is not None and v not in g.maps]
        op = node.op_type
        if op in ("Add", "Sub", "Sum", "Max", "Min", "Mean"):  # all operands zero -> zero
            zero = np.logical_and.reduce(zeros + const_zero)
        elif op == "Mul":
            zero = np.logical_or.reduce(zeros + const_zero)
        elif op == "Div":
            num = node.inputs[0]
            zero = g.maps[num].zero if num in g.maps else np.zeros(n, bool)
            if node.inputs[1] in g.maps:
                zero = np.zeros(n, bool)  # 0/0 is NaN: never claim zero
        else:
            zero = np.zeros(n, bool)
        g.maps[out] = ChannelMap(axis, first.atoms, zero)

    def materialise(self, edit, node):
        out = node.outputs[0]
        keep = edit.kept(out)
        if keep is None:
            return
        out_rank = rank_of(out)
        for i, v in enumerate(node.inputs):
            if v is not None and not edit.has_map(v) and const_array(v) is not None:
                edit.slice_broadcast_const(node, i, out_rank, edit.axis(out), keep)


def _const_zero(v: ir.Value, rank: int, axis: int, n: int) -> np.ndarray:
    c = const_array(v)
    if c is None:
        return np.zeros(n, bool)
    if c.size == 1 or c.ndim <= rank - 1 - axis:
        return np.full(n, bool(np.all(c == 0)))
    aligned = axis - (rank - c.ndim)
    moved = np.moveaxis(c, aligned, 0).reshape(c.shape[aligned], -1)
    z = ~np.any(moved != 0, axis=1)
    return np.broadcast_to(z, (n,)).copy()


