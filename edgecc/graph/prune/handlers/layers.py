"""Handlers for layers with weights: Conv (dense, depthwise), ConvTranspose, Gemm, MatMul, BatchNorm/InstanceNorm."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ...rewrite._util import const_array
from ..depgraph import ChannelMap
from ._common import Handler, input_at, new_output, norms, rank_of, static_dims


def _consume(g, node: ir.Node, x: ir.Value, axis: int, what: str) -> None:
    """The layer reads ``x``'s channels on ``axis`` (summing over them): they are needed where not all zero."""
    cin = g.maps.get(x)
    if cin is None:
        return
    if cin.axis != axis:
        g.pin(x, node, f"channels not on {what}")
    else:
        g.consume(cin)


def _slice_layer(edit, node: ir.Node, in_axis: int, out_axis: int) -> None:
    """Cut the weight (input 1) along ``in_axis`` to the input's kept channels and along ``out_axis`` to the
    output's, and a per-output bias (input 2, last axis) with it."""
    w = const_array(node.inputs[1])
    keep_in, keep_out = edit.kept(node.inputs[0]), edit.kept(node.outputs[0])
    if keep_in is not None:
        _compensate(edit, node, w, in_axis, keep_in)
        w = np.take(w, keep_in, axis=in_axis)
    if keep_out is not None:
        w = np.take(w, keep_out, axis=out_axis)
        c = const_array(input_at(node, 2))
        if c is not None and c.size > 1:
            edit.set_const(node, 2, c[..., keep_out])
    if keep_in is not None or keep_out is not None:
        edit.set_const(node, 1, w)



def _compensate(edit, node: ir.Node, w: np.ndarray, in_axis: int, keep_in: np.ndarray) -> None:
    """Fold the removed input channels' mean contribution into the layer's bias (see prune.compensate);
    nothing when no means were measured for this input."""
    from ..compensate import bias_add, bias_delta, reads_channels

    mean = edit.mean(node.inputs[0])
    if mean is None or not reads_channels(node):
        return
    removed = np.setdiff1d(np.arange(w.shape[in_axis]), keep_in)
    delta = bias_delta(w, in_axis, removed, mean)
    if node.op_type == "MatMul":
        add, i = bias_add(node)
        edit.set_const(add, i, (const_array(add.inputs[i]) + delta).astype(np.float32))
        return
    if node.op_type == "Gemm":
        delta *= node.attributes.get_float("alpha", 1.0) / node.attributes.get_float("beta", 1.0)
    bias = const_array(input_at(node, 2))
    if bias is None:
        edit.add_const_input(node, delta.astype(np.float32))
    else:
        edit.set_const(node, 2, (bias + delta).astype(bias.dtype))  # a scalar Gemm C broadcasts to [N]


class ConvHandler(Handler):
    """Conv: group 1 consumes its input channels (weight axis 1) and makes new ones (axis 0); depthwise
    (group = C_in = C_out) passes channels through; other groupings are barriers."""

    def _kind(self, node: ir.Node, w: np.ndarray | None) -> str:
        group = node.attributes.get_int("group", 1)
        if w is None:
            return "dynamic"
        if group == 1:
            return "dense"
        if w.shape[1] == 1 and w.shape[0] == group:
            return "depthwise"
        return "grouped"

    def propagate(self, g, node):
        x, w_v, b_v, out = node.inputs[0], node.inputs[1], input_at(node, 2), node.outputs[0]
        w, b = const_array(w_v), const_array(b_v)
        kind = self._kind(node, w)
        cin = g.maps.get(x)
        if kind == "dynamic" or (b_v is not None and b is None):
            g.pin(x, node, "Conv with non-constant weights or bias")
            return
        if kind == "grouped":
            g.pin(x, node, f"grouped Conv (group={node.attributes.get_int('group', 1)}) that is not depthwise")
            return
        if kind == "depthwise":
            if cin is None:
                return
            if cin.axis != 1:
                g.pin(x, node, "channels not on axis 1")
                return
            wz = ~np.any(w.reshape(w.shape[0], -1) != 0, axis=1)
            bz = np.ones(len(cin), bool) if b is None else (b == 0)
            l1, l2 = norms(w, 0)
            g.add_importance("l1", cin.atoms, l1)
            g.add_importance("l2", cin.atoms, l2)
            g.maps[out] = ChannelMap(1, cin.atoms, (cin.zero | wz) & bz)
            return
        _consume(g, node, x, 1, "axis 1")
        new_output(g, node, out, w, 0, b, 1)

    def materialise(self, edit, node):
        w = const_array(node.inputs[1])
        kind = self._kind(node, w)
        keep_out = edit.kept(node.outputs[0])
        if kind == "depthwise":
            if keep_out is not None:
                edit.set_const(node, 1, w[keep_out])
                if input_at(node, 2) is not None:
                    edit.set_const(node, 2, const_array(node.inputs[2])[keep_out])
                node.attributes["group"] = ir.AttrInt64("group", len(keep_out))
            return
        _slice_layer(edit, node, 1, 0)


class ConvTransposeHandler(Handler):
    """ConvTranspose with group 1: weight [C_in, C_out, k...]; consumes axis 0, makes axis 1."""

    def propagate(self, g, node):
        x, out = node.inputs[0], node.outputs[0]
        w, b_v = const_array(node.inputs[1]), input_at(node, 2)
        b = const_array(b_v)
        if w is None or (b_v is not None and b is None) or node.attributes.get_int("group", 1) != 1:
            g.pin(x, node, "ConvTranspose with group > 1 or non-constant weights")
            return
        _consume(g, node, x, 1, "axis 1")
        new_output(g, node, out, w, 1, b, 1)

    def materialise(self, edit, node):
        _slice_layer(edit, node, 0, 1)


class GemmHandler(Handler):
    """Gemm with a constant B (transA 0): consumes A's axis 1 (B's K axis), makes N channels (and slices C)."""

    def propagate(self, g, node):
        a, b_v, c_v, out = node.inputs[0], node.inputs[1], input_at(node, 2), node.outputs[0]
        b, c = const_array(b_v), const_array(c_v)
        if b is None or node.attributes.get_int("transA", 0) or (c_v is not None and c is None):
            g.pin(a, node, "Gemm with transA or a non-constant B/C")
            g.pin(b_v, node, "Gemm input B")
            return
        trans_b = node.attributes.get_int("transB", 0)
        _consume(g, node, a, 1, "axis 1")
        n = b.shape[0 if trans_b else 1]
        bias = None
        if c is not None:
            if c.size == n and c.shape[-1] == n:
                bias = c.reshape(-1)
            elif c.size != 1:
                return  # C broadcasts over rows too: its N axis cannot be cut simply; outputs stay as they are
            else:
                bias = c.reshape(-1)
        scaled = b.T if trans_b else b  # [K, N]
        new_output(g, node, out, scaled, 1, bias, 1)

    def materialise(self, edit, node):
        k_axis, n_axis = (1, 0) if node.attributes.get_int("transB", 0) else (0, 1)
        _slice_layer(edit, node, k_axis, n_axis)


class MatMulHandler(Handler):
    """MatMul by a constant 2-D weight [K, N]: consumes A's last axis, makes N channels on the last axis.
    MatMul of two activations (attention's Q.K^T and P.V) passes channels that sit on a batch axis (heads)
    and unites them between its operands; channels on the two matrix axes stop there."""

    def propagate(self, g, node):
        a, b_v, out = node.inputs[0], node.inputs[1], node.outputs[0]
        b = const_array(b_v)
        rank = rank_of(a)
        if b is None and rank_of(out) is not None and rank_of(b_v) is not None and rank is not None:
            self._batched(g, node)
            return
        if b is None or b.ndim != 2 or rank is None or rank < 2:
            g.pin(a, node, "MatMul of two activations (or a weight that is not 2-D)")
            g.pin(b_v, node, "MatMul of two activations (or a weight that is not 2-D)")
            return
        _consume(g, node, a, rank - 1, "the contracted (last) axis")
        new_output(g, node, out, b, 1, None, rank - 1)

    def _batched(self, g, node) -> None:
        out_rank = rank_of(node.outputs[0])
        mapped = [v for v in node.inputs if v in g.maps]
        if not mapped:
            return
        axes = {g.maps[v].axis + out_rank - rank_of(v) for v in mapped}
        axis = axes.pop() if len(axes) == 1 else None
        ok = axis is not None and axis < out_rank - 2 and len({len(g.maps[v]) for v in mapped}) == 1
        for v in node.inputs:
            if ok and v not in g.maps:
                dims = static_dims(v)
                aligned = axis - (out_rank - len(dims)) if dims is not None else None
                ok = dims is not None and (aligned < 0 or dims[aligned] == 1)
        if not ok:
            for v in mapped:
                g.pin(v, node, "MatMul of two activations with channels on a matrix axis")
            return
        first = g.maps[mapped[0]]
        for v in mapped[1:]:
            g.unite(first.atoms, g.maps[v].atoms)
        zero = np.logical_or.reduce([g.maps[v].zero for v in mapped])  # a zero matrix times anything is zero
        g.maps[node.outputs[0]] = ChannelMap(axis, first.atoms, zero)

    def materialise(self, edit, node):
        b = const_array(node.inputs[1])
        if b is not None:  # two activations have nothing of their own to cut
            _slice_layer(edit, node, 0, 1)


class NormHandler(Handler):
    """BatchNormalization / InstanceNormalization: per-channel parameters on axis 1, sliced."""

    def propagate(self, g, node):
        x, out = node.inputs[0], node.outputs[0]
        cin = g.maps.get(x)
        if cin is None:
            return
        params = [const_array(v) for v in node.inputs[1:]]
        if any(p is None for p in params) or cin.axis != 1 or any(o.uses() for o in node.outputs[1:] if o is not None):
            g.pin(x, node, f"{node.op_type} with non-constant parameters, training outputs or channels not on axis 1")
            return
        scale, bias = params[0], params[1]
        if node.op_type == "BatchNormalization":
            mean = params[2]
            zero = cin.zero & (bias == 0) & ((mean == 0) | (scale == 0))
            g.add_importance("bn-gamma", cin.atoms, np.abs(scale.astype(np.float64)))
        else:  # InstanceNormalization of an all-zero channel is its bias
            zero = cin.zero & (bias == 0)
        g.maps[out] = ChannelMap(1, cin.atoms, zero)

    def materialise(self, edit, node):
        keep = edit.kept(node.inputs[0])
        if keep is not None:
            for i in range(1, len(node.inputs)):
                edit.set_const(node, i, const_array(node.inputs[i])[keep])


# f(0) == 0 for these, so an all-zero channel stays all zero through them.
