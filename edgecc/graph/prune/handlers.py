"""The table of op handlers channel pruning propagates through.

Each handler says, for one node, how channel maps flow from its inputs to its outputs
(``propagate``) and how to cut the node's own parameters once the kept channels are known
(``materialise``). An op that is not in :data:`HANDLERS` is a barrier (see :mod:`.depgraph`).

Channel axes: a feature map [N, C, ...] has its channels on axis 1; a MatMul with a constant [K, N]
weight produces channels on its last axis (transformer hidden states [B, S, H]).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..rewrite._util import const_array
from .depgraph import ChannelMap, DependencyGraph


def _rank(v: ir.Value | None) -> int | None:
    return None if v is None or v.shape is None else len(v.shape)


def _dims(v: ir.Value | None) -> list[int] | None:
    if v is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
        return None
    return list(v.shape)


def _input(node: ir.Node, i: int) -> ir.Value | None:
    return node.inputs[i] if len(node.inputs) > i else None


def _norms(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """L1 and L2 norms of each slice of ``w`` along ``axis``, each divided by its mean so that layers of
    different scale weigh alike when a coupled group sums them."""
    moved = np.moveaxis(np.abs(w.astype(np.float64)), axis, 0).reshape(w.shape[axis], -1)
    l1, l2 = moved.sum(1), np.sqrt((moved**2).sum(1))
    return l1 / (l1.mean() or 1.0), l2 / (l2.mean() or 1.0)


def _new_output(g: DependencyGraph, node: ir.Node, out: ir.Value, w: np.ndarray, out_axis_w: int, bias: np.ndarray | None,
                value_axis: int) -> None:
    """Register ``node`` as a source of ``w.shape[out_axis_w]`` channels on ``out``'s ``value_axis``."""
    n = w.shape[out_axis_w]
    if n < 2:  # one channel cannot be pruned (never all channels of a group)
        return
    src = g.new_source(node, n)
    atoms = g.atoms_of(src)
    l1, l2 = _norms(w, out_axis_w)
    g.add_importance("l1", atoms, l1)
    g.add_importance("l2", atoms, l2)
    zero = np.moveaxis(w, out_axis_w, 0).reshape(n, -1)
    zero = ~np.any(zero != 0, axis=1)
    if bias is not None:
        b = np.broadcast_to(bias.reshape(-1), (n,)) if bias.size in (1, n) else None
        zero = zero & (b == 0) if b is not None else np.zeros(n, bool)
    g.maps[out] = ChannelMap(value_axis, atoms, zero)


class Handler:
    """Base: subclasses override ``propagate`` and, where the node has per-channel parameters, ``materialise``."""

    def propagate(self, g: DependencyGraph, node: ir.Node) -> None:
        raise NotImplementedError

    def materialise(self, edit, node: ir.Node) -> None:
        pass


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
        x, w_v, b_v, out = node.inputs[0], node.inputs[1], _input(node, 2), node.outputs[0]
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
            l1, l2 = _norms(w, 0)
            g.add_importance("l1", cin.atoms, l1)
            g.add_importance("l2", cin.atoms, l2)
            g.maps[out] = ChannelMap(1, cin.atoms, (cin.zero | wz) & bz)
            return
        if cin is not None:
            if cin.axis != 1:
                g.pin(x, node, "channels not on axis 1")
            else:
                g.consume(cin)
        _new_output(g, node, out, w, 0, b, 1)

    def materialise(self, edit, node):
        w = const_array(node.inputs[1])
        kind = self._kind(node, w)
        keep_out = edit.kept(node.outputs[0])
        if kind == "depthwise":
            if keep_out is not None:
                edit.set_const(node, 1, w[keep_out])
                if _input(node, 2) is not None:
                    edit.set_const(node, 2, const_array(node.inputs[2])[keep_out])
                node.attributes["group"] = ir.AttrInt64("group", len(keep_out))
            return
        keep_in = edit.kept(node.inputs[0])
        if keep_in is not None:
            w = w[:, keep_in]
        if keep_out is not None:
            w = w[keep_out]
            if _input(node, 2) is not None:
                edit.set_const(node, 2, const_array(node.inputs[2])[keep_out])
        if keep_in is not None or keep_out is not None:
            edit.set_const(node, 1, w)


class ConvTransposeHandler(Handler):
    """ConvTranspose with group 1: weight [C_in, C_out, k...]; consumes axis 0, makes axis 1."""

    def propagate(self, g, node):
        x, out = node.inputs[0], node.outputs[0]
        w, b_v = const_array(node.inputs[1]), _input(node, 2)
        b = const_array(b_v)
        if w is None or (b_v is not None and b is None) or node.attributes.get_int("group", 1) != 1:
            g.pin(x, node, "ConvTranspose with group > 1 or non-constant weights")
            return
        cin = g.maps.get(x)
        if cin is not None:
            if cin.axis != 1:
                g.pin(x, node, "channels not on axis 1")
            else:
                g.consume(cin)
        _new_output(g, node, out, w, 1, b, 1)

    def materialise(self, edit, node):
        w = const_array(node.inputs[1])
        keep_in, keep_out = edit.kept(node.inputs[0]), edit.kept(node.outputs[0])
        if keep_in is not None:
            w = w[keep_in]
        if keep_out is not None:
            w = w[:, keep_out]
            if _input(node, 2) is not None:
                edit.set_const(node, 2, const_array(node.inputs[2])[keep_out])
        if keep_in is not None or keep_out is not None:
            edit.set_const(node, 1, w)


class GemmHandler(Handler):
    """Gemm with a constant B (transA 0): consumes A's axis 1 (B's K axis), makes N channels (and slices C)."""

    def propagate(self, g, node):
        a, b_v, c_v, out = node.inputs[0], node.inputs[1], _input(node, 2), node.outputs[0]
        b, c = const_array(b_v), const_array(c_v)
        if b is None or node.attributes.get_int("transA", 0) or (c_v is not None and c is None):
            g.pin(a, node, "Gemm with transA or a non-constant B/C")
            g.pin(b_v, node, "Gemm input B")
            return
        trans_b = node.attributes.get_int("transB", 0)
        cin = g.maps.get(a)
        if cin is not None:
            if cin.axis != 1:
                g.pin(a, node, "channels not on axis 1")
            else:
                g.consume(cin)
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
        _new_output(g, node, out, scaled, 1, bias, 1)

    def materialise(self, edit, node):
        b = const_array(node.inputs[1])
        trans_b = node.attributes.get_int("transB", 0)
        keep_in, keep_out = edit.kept(node.inputs[0]), edit.kept(node.outputs[0])
        k_axis, n_axis = (1, 0) if trans_b else (0, 1)
        if keep_in is not None:
            b = np.take(b, keep_in, axis=k_axis)
        if keep_out is not None:
            b = np.take(b, keep_out, axis=n_axis)
            c = const_array(_input(node, 2))
            if c is not None and c.size > 1:
                edit.set_const(node, 2, c.reshape(c.shape)[..., keep_out])
        if keep_in is not None or keep_out is not None:
            edit.set_const(node, 1, b)


class MatMulHandler(Handler):
    """MatMul by a constant 2-D weight [K, N]: consumes A's last axis, makes N channels on the last axis."""

    def propagate(self, g, node):
        a, b_v, out = node.inputs[0], node.inputs[1], node.outputs[0]
        b = const_array(b_v)
        rank = _rank(a)
        if b is None or b.ndim != 2 or rank is None or rank < 2:
            g.pin(a, node, "MatMul of two activations (or a weight that is not 2-D)")
            g.pin(b_v, node, "MatMul of two activations (or a weight that is not 2-D)")
            return
        cin = g.maps.get(a)
        if cin is not None:
            if cin.axis != rank - 1:
                g.pin(a, node, "channels not on the contracted (last) axis")
            else:
                g.consume(cin)
        _new_output(g, node, out, b, 1, None, rank - 1)

    def materialise(self, edit, node):
        b = const_array(node.inputs[1])
        keep_in, keep_out = edit.kept(node.inputs[0]), edit.kept(node.outputs[0])
        if keep_in is not None:
            b = b[keep_in]
        if keep_out is not None:
            b = b[:, keep_out]
        if keep_in is not None or keep_out is not None:
            edit.set_const(node, 1, b)


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
        rank = _rank(x)
        for extra in node.inputs[1:]:
            if extra is None:
                continue
            c = const_array(extra)
            if c is None or not _per_channel_ok(c, rank, cin.axis, len(cin)):
                g.pin(x, node, f"{node.op_type} with a non-constant or non-broadcastable extra input")
                return
        zero = cin.zero if node.op_type in ZERO_PRESERVING else np.zeros(len(cin), bool)
        if node.op_type == "Clip":
            lo, hi = (const_array(_input(node, i)) for i in (1, 2))
            if (lo is not None and float(lo.reshape(-1)[0]) > 0) or (hi is not None and float(hi.reshape(-1)[0]) < 0):
                zero = np.zeros(len(cin), bool)
            else:
                zero = cin.zero
        g.maps[out] = ChannelMap(cin.axis, cin.atoms, zero)

    def materialise(self, edit, node):
        keep = edit.kept(node.inputs[0])
        if keep is None:
            return
        rank = _rank(node.inputs[0])
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
        out_rank = _rank(out)
        mapped = [(v, g.maps[v]) for v in node.inputs if v is not None and v in g.maps]
        if not mapped:
            return
        if out_rank is None:
            for v, _ in mapped:
                g.pin(v, node, "output rank unknown")
            return
        axes = {m.axis + out_rank - _rank(v) for v, m in mapped}
        sizes = {len(m) for _, m in mapped}
        if len(axes) != 1 or len(sizes) != 1:
            for v, _ in mapped:
                g.pin(v, node, "inputs carry channels on different axes or of different counts")
            return
        axis, n = axes.pop(), sizes.pop()
        for v in node.inputs:
            if v is None or v in g.maps:
                continue
            rank = _rank(v)
            c = const_array(v)
            dims = _dims(v)
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
        out_rank = _rank(out)
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


class PassThroughHandler(Handler):
    """Ops that keep every channel where it is: pooling, Pad (no padding of channels), Resize (scale 1 on
    channels; a constant ``sizes`` is updated), Slice and reductions over other axes."""

    def propagate(self, g, node):
        x = node.inputs[0]
        cin = g.maps.get(x)
        if cin is None:
            return
        why = self._blocked(node, cin)
        if why:
            g.pin(x, node, why)
            return
        # pooling, padding with zeros, resizing and slicing all keep an all-zero channel all zero
        g.maps[node.outputs[0]] = ChannelMap(cin.axis, cin.atoms, cin.zero)

    def _blocked(self, node: ir.Node, cin: ChannelMap) -> str | None:
        op = node.op_type
        if op == "MaxPool" and len(node.outputs) > 1 and node.outputs[1] is not None and node.outputs[1].uses():
            return "MaxPool indices are used"
        if op in ("MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool") and cin.axis != 1:
            return "channels not on axis 1"
        if op == "Pad":
            pads = const_array(_input(node, 1))
            axes = const_array(_input(node, 3))
            rank = _rank(node.inputs[0])
            if pads is None or rank is None:
                return "Pad with non-constant pads"
            ax = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
            k = len(ax)
            if cin.axis in ax and (pads[ax.index(cin.axis)] != 0 or pads[k + ax.index(cin.axis)] != 0):
                return "Pad pads the channel axis"
        if op in ("Resize", "Upsample"):
            scales = const_array(_input(node, 2)) if op == "Resize" else const_array(_input(node, 1))
            sizes = const_array(_input(node, 3))
            if node.attributes.get_ints("axes", None) is not None:
                return "Resize with axes"
            if scales is not None and scales.size and float(scales[cin.axis]) != 1.0:
                return "Resize scales the channel axis"
            if (scales is None or not scales.size) and sizes is None:
                return "Resize with non-constant scales/sizes"
        if op == "Slice":
            starts, ends = const_array(_input(node, 1)), const_array(_input(node, 2))
            axes, steps = const_array(_input(node, 3)), const_array(_input(node, 4))
            rank = _rank(node.inputs[0])
            if starts is None or ends is None or rank is None or (_input(node, 3) is not None and axes is None):
                return "Slice with non-constant bounds"
            ax = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes]
            if cin.axis in ax:
                i = ax.index(cin.axis)
                step = 1 if steps is None else int(steps[i])
                if not (int(starts[i]) == 0 and step == 1 and int(ends[i]) >= len(cin)):
                    return "Slice cuts the channel axis"
        if op.startswith("Reduce") or op in ("ArgMax", "ArgMin"):
            return "reduction (handled by ReduceHandler)"
        return None

    def materialise(self, edit, node):
        if node.op_type != "Resize":
            return
        keep = edit.kept(node.inputs[0])
        sizes = const_array(_input(node, 3))
        if keep is not None and sizes is not None:
            sizes = sizes.copy()
            sizes[edit.axis(node.inputs[0])] = len(keep)
            edit.set_const(node, 3, sizes)


class ReduceHandler(Handler):
    """Reduce* and Arg*: a barrier when the channel axis is reduced; otherwise channels move with the axes kept."""

    def propagate(self, g, node):
        x = node.inputs[0]
        cin = g.maps.get(x)
        if cin is None:
            return
        rank = _rank(x)
        axes = node.attributes.get_ints("axes", None)
        if node.op_type in ("ArgMax", "ArgMin"):
            axes = [node.attributes.get_int("axis", 0)]
        elif axes is None and _input(node, 1) is not None:
            found = const_array(node.inputs[1])
            if found is None:
                g.pin(x, node, "reduction axes are not constant")
                return
            axes = found.reshape(-1).tolist()
        if rank is None:
            g.pin(x, node, "rank unknown")
            return
        if axes is None or len(axes) == 0:
            if node.attributes.get_int("noop_with_empty_axes", 0):
                g.maps[node.outputs[0]] = cin
                return
            axes = list(range(rank))
        axes = [int(a) % rank for a in axes]
        if cin.axis in axes:
            g.pin(x, node, f"{node.op_type} reduces over the channel axis")
            return
        keepdims = node.attributes.get_int("keepdims", 1)
        axis = cin.axis if keepdims else cin.axis - sum(1 for a in axes if a < cin.axis)
        zero = cin.zero if node.op_type in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2") else np.zeros(len(cin), bool)
        g.maps[node.outputs[0]] = ChannelMap(axis, cin.atoms, zero)


class AxisOpHandler(Handler):
    """Softmax, LogSoftmax, Hardmax, LayerNormalization, Flatten: a barrier when they act across the channel axis."""

    def propagate(self, g, node):
        x = node.inputs[0]
        cin = g.maps.get(x)
        if cin is None:
            return
        rank = _rank(x)
        if rank is None:
            g.pin(x, node, "rank unknown")
            return
        op = node.op_type
        axis = node.attributes.get_int("axis", -1 if op != "Flatten" else 1) % rank
        if op == "Flatten":
            # [d0..d(a-1), da..] -> [prod(d0..d(a-1)), prod(da..)]: channels survive when every other dim on
            # their side of the split is 1.
            dims = _dims(x)
            side = list(range(axis)) if cin.axis < axis else list(range(axis, rank))
            if dims is None or any(dims[i] != 1 for i in side if i != cin.axis):
                g.pin(x, node, "Flatten merges the channel axis with others")
                return
            g.maps[node.outputs[0]] = ChannelMap(0 if cin.axis < axis else 1, cin.atoms, cin.zero)
            return
        if op == "LayerNormalization":
            if cin.axis >= axis:
                g.pin(x, node, "LayerNormalization normalises over the channel axis")
                return
        elif cin.axis == axis:
            g.pin(x, node, f"{op} normalises over the channel axis")
            return
        g.maps[node.outputs[0]] = ChannelMap(cin.axis, cin.atoms, np.zeros(len(cin), bool))


class ShapeOpHandler(Handler):
    """Reshape (when the channel axis survives as an axis of its own), Squeeze, Unsqueeze, Transpose, Gather
    on another axis: channels follow their axis to its new position."""

    def propagate(self, g, node):
        x = node.inputs[0]
        cin = g.maps.get(x)
        if cin is None:
            for v in node.inputs[1:]:
                g.pin(v, node, f"channels used as {node.op_type} parameters")
            return
        axis = self._new_axis(node, cin)
        if isinstance(axis, str):
            g.pin(x, node, axis)
            return
        g.maps[node.outputs[0]] = ChannelMap(axis, cin.atoms, cin.zero)

    def _new_axis(self, node: ir.Node, cin: ChannelMap) -> int | str:
        op, rank, c = node.op_type, _rank(node.inputs[0]), cin.axis
        if rank is None:
            return "rank unknown"
        if op == "Transpose":
            perm = node.attributes.get_ints("perm", list(reversed(range(rank))))
            return list(perm).index(c)
        if op in ("Squeeze", "Unsqueeze"):
            axes = node.attributes.get_ints("axes", None)
            if axes is None and _input(node, 1) is not None:
                found = const_array(node.inputs[1])
                if found is None:
                    return f"{op} axes are not constant"
                axes = found.reshape(-1).tolist()
            if op == "Squeeze":
                dims = _dims(node.inputs[0])
                if axes is None:
                    if dims is None:
                        return "Squeeze of unknown dims"
                    axes = [i for i, d in enumerate(dims) if d == 1]
                axes = [int(a) % rank for a in axes]
                if c in axes:
                    return "Squeeze removes the channel axis"
                return c - sum(1 for a in axes if a < c)
            out_rank = _rank(node.outputs[0])
            axes = sorted(int(a) % out_rank for a in axes)
            pos = c
            for a in axes:
                if a <= pos:
                    pos += 1
            return pos
        if op == "Gather":
            axis = node.attributes.get_int("axis", 0) % rank
            if axis == c:
                return "Gather indexes the channel axis"
            idx_rank = _rank(node.inputs[1])
            if idx_rank is None:
                return "rank unknown"
            return c if c < axis else c + idx_rank - 1
        if op == "Reshape":
            src, dst = _dims(node.inputs[0]), _dims(node.outputs[0])
            shape = const_array(_input(node, 1))
            if src is None or dst is None or shape is None:
                return "Reshape with unknown shapes"
            before = int(np.prod(src[:c]))
            for j in range(len(dst)):
                if int(np.prod(dst[:j])) == before and dst[j] == src[c] and int(np.prod(dst[j + 1:])) == int(np.prod(src[c + 1:])):
                    return j
            return "Reshape merges or splits the channel axis"
        return f"no rule for {op}"

    def materialise(self, edit, node):
        if node.op_type != "Reshape":
            return
        keep = edit.kept(node.inputs[0])
        if keep is None:
            return
        shape = const_array(node.inputs[1]).copy()
        j = edit.axis(node.outputs[0])
        if shape[j] != 0 or j != edit.axis(node.inputs[0]):
            shape[j] = len(keep)
            edit.set_const(node, 1, shape)


class ConcatHandler(Handler):
    """Concat along the channel axis lays its inputs' channels end to end (an input without channels of
    its own becomes a block of fixed channels); along another axis it unites them position by position."""

    def propagate(self, g, node):
        out = node.outputs[0]
        rank = _rank(out)
        mapped = [node.inputs[i] for i in range(len(node.inputs)) if node.inputs[i] in g.maps]
        if not mapped or rank is None:
            for v in mapped:
                g.pin(v, node, "rank unknown")
            return
        axis = node.attributes.get_int("axis", 0) % rank
        if all(g.maps[v].axis == axis for v in mapped):
            atoms, zeros = [], []
            for v in node.inputs:
                m = g.maps.get(v)
                if m is None:
                    dims = _dims(v)
                    if dims is None:
                        for mv in mapped:
                            g.pin(mv, node, "Concat input of unknown shape")
                        return
                    src = g.new_source(None, dims[axis], fixed=f"Concat '{node.name}' input '{v.name}' has no prunable channels")
                    m = ChannelMap(axis, g.atoms_of(src), np.zeros(dims[axis], bool))
                atoms.append(m.atoms)
                zeros.append(m.zero)
            g.maps[out] = ChannelMap(axis, np.concatenate(atoms), np.concatenate(zeros))
            return
        maps = [g.maps[v] for v in mapped]
        if len(mapped) != len(node.inputs) or len({m.axis for m in maps}) != 1 or len({len(m) for m in maps}) != 1:
            for v in mapped:
                g.pin(v, node, "Concat of tensors whose channels do not line up")
            return
        for m in maps[1:]:
            g.unite(maps[0].atoms, m.atoms)
        g.maps[out] = ChannelMap(maps[0].axis, maps[0].atoms, np.logical_and.reduce([m.zero for m in maps]))


class SplitHandler(Handler):
    """Split along the channel axis gives each output its run of channels (split sizes are updated);
    along another axis every output keeps all channels."""

    def _sizes(self, node: ir.Node, total: int) -> list[int] | None:
        split = node.attributes.get_ints("split", None)
        if split is None and _input(node, 1) is not None:
            found = const_array(node.inputs[1])
            if found is None:
                return None
            split = found.reshape(-1).tolist()
        if split is None:
            n = len(node.outputs)
            if total % n:
                return None
            split = [total // n] * n
        return [int(s) for s in split]

    def propagate(self, g, node):
        x = node.inputs[0]
        cin = g.maps.get(x)
        rank = _rank(x)
        if cin is None:
            return
        if rank is None:
            g.pin(x, node, "rank unknown")
            return
        axis = node.attributes.get_int("axis", 0) % rank
        if axis != cin.axis:
            for o in node.outputs:
                g.maps[o] = cin
            return
        sizes = self._sizes(node, len(cin))
        if sizes is None or sum(sizes) != len(cin):
            g.pin(x, node, "Split sizes are not constant")
            return
        start = 0
        for o, s in zip(node.outputs, sizes):
            g.maps[o] = ChannelMap(axis, cin.atoms[start:start + s], cin.zero[start:start + s])
            start += s

    def materialise(self, edit, node):
        keep = edit.kept(node.inputs[0])
        if keep is None or edit.axis(node.inputs[0]) != node.attributes.get_int("axis", 0) % _rank(node.inputs[0]):
            return
        sizes = [len(edit.kept(o)) if edit.kept(o) is not None else edit.length(o) for o in node.outputs]
        if "num_outputs" in node.attributes:
            del node.attributes["num_outputs"]
        if "split" in node.attributes:
            node.attributes["split"] = ir.AttrInt64s("split", sizes)
        elif _input(node, 1) is not None:
            edit.set_const(node, 1, np.array(sizes, dtype=np.int64))
        else:
            edit.add_const_input(node, np.array(sizes, dtype=np.int64))


_PASS = PassThroughHandler()
_UNARY = UnaryHandler()
_BINARY = BinaryHandler()
_SHAPE = ShapeOpHandler()
_AXIS = AxisOpHandler()

HANDLERS: dict[str, Handler] = {
    "Conv": ConvHandler(),
    "ConvTranspose": ConvTransposeHandler(),
    "Gemm": GemmHandler(),
    "MatMul": MatMulHandler(),
    "BatchNormalization": NormHandler(),
    "InstanceNormalization": NormHandler(),
    **{op: _UNARY for op in UNARY},
    **{op: _BINARY for op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Sum", "Mean")},
    **{op: _PASS for op in ("MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
                            "Pad", "Resize", "Upsample", "Slice")},
    **{op: ReduceHandler() for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                      "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin")},
    **{op: _AXIS for op in ("Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "Flatten")},
    **{op: _SHAPE for op in ("Reshape", "Squeeze", "Unsqueeze", "Transpose", "Gather")},
    "Concat": ConcatHandler(),
    "Split": SplitHandler(),
}
