"""Handlers for ops that move channels without weights: pooling, Pad, Resize, Slice, reductions, Softmax/LayerNorm/
Flatten, Reshape/Squeeze/Unsqueeze/Transpose/Gather, Concat and Split."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ...rewrite._util import const_array
from ..depgraph import ChannelMap
from ._common import Handler, input_at, rank_of, static_dims


class PassThroughHandler(Handler):
    """Ops that keep every channel where it is: pooling, Pad (no padding of channels), Resize (scale 1 on
    channels; a constant ``sizes`` is updated)."""

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
            pads = const_array(input_at(node, 1))
            axes = const_array(input_at(node, 3))
            rank = rank_of(node.inputs[0])
            if pads is None or rank is None:
                return "Pad with non-constant pads"
            ax = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
            k = len(ax)
            if cin.axis in ax and (pads[ax.index(cin.axis)] != 0 or pads[k + ax.index(cin.axis)] != 0):
                return "Pad pads the channel axis"
        if op in ("Resize", "Upsample"):
            scales = const_array(input_at(node, 2)) if op == "Resize" else const_array(input_at(node, 1))
            sizes = const_array(input_at(node, 3))
            if node.attributes.get_ints("axes", None) is not None:
                return "Resize with axes"
            if scales is not None and scales.size and float(scales[cin.axis]) != 1.0:
                return "Resize scales the channel axis"
            if (scales is None or not scales.size) and sizes is None:
                return "Resize with non-constant scales/sizes"
        if op.startswith("Reduce") or op in ("ArgMax", "ArgMin"):
            return "reduction (handled by ReduceHandler)"
        return None

    def materialise(self, edit, node):
        if node.op_type != "Resize":
            return
        keep = edit.kept(node.inputs[0])
        sizes = const_array(input_at(node, 3))
        if keep is not None and sizes is not None:
            sizes = sizes.copy()
            sizes[edit.axis(node.inputs[0])] = len(keep)
            edit.set_const(node, 3, sizes)


class SliceHandler(Handler):
    """Slice with constant bounds. Channels pass through when their axis is not sliced; a step-1 slice of the
    channel axis keeps that run of channels, and its bounds are recomputed after pruning (removal keeps the
    order, so the kept channels of a run are again a run)."""

    def _channel_slice(self, node: ir.Node, cin: ChannelMap) -> tuple[int, int, int] | None | str:
        """(index into starts/ends, start, end) when the channel axis is sliced, None when it is not, or why not."""
        starts, ends = const_array(input_at(node, 1)), const_array(input_at(node, 2))
        axes, steps = const_array(input_at(node, 3)), const_array(input_at(node, 4))
        rank = rank_of(node.inputs[0])
        if starts is None or ends is None or rank is None or (input_at(node, 3) is not None and axes is None) or (
            input_at(node, 4) is not None and steps is None
        ):
            return "Slice with non-constant bounds"
        ax = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes]
        if cin.axis not in ax:
            return None
        i = ax.index(cin.axis)
        if steps is not None and int(steps[i]) != 1:
            return "Slice with a step on the channel axis"
        picked = range(len(cin))[int(starts[i]):int(ends[i])]  # ONNX clamps bounds as Python slicing does
        return i, picked.start, picked.stop

    def propagate(self, g, node):
        x = node.inputs[0]
        cin = g.maps.get(x)
        if cin is None:
            return
        found = self._channel_slice(node, cin)
        if isinstance(found, str):
            g.pin(x, node, found)
            return
        if found is None:
            g.maps[node.outputs[0]] = cin
            return
        _, start, stop = found
        g.maps[node.outputs[0]] = ChannelMap(cin.axis, cin.atoms[start:stop], cin.zero[start:stop])

    def materialise(self, edit, node):
        keep = edit.kept(node.inputs[0])
        found = self._channel_slice(node, edit.g.maps[node.inputs[0]]) if keep is not None else None
        if found is None or isinstance(found, str):
            return
        i, start, stop = found
        new_start = int(np.sum(keep < start))
        new_stop = new_start + int(np.sum((keep >= start) & (keep < stop)))
        starts, ends = const_array(node.inputs[1]).copy(), const_array(node.inputs[2]).copy()
        starts[i], ends[i] = new_start, new_stop
        edit.set_const(node, 1, starts)
        edit.set_const(node, 2, ends)


class ReduceHandler(Handler):
    """Reduce* and Arg*: a barrier when the channel axis is reduced; otherwise channels move with the axes kept."""

    def propagate(self, g, node):
        x = node.inputs[0]
        cin = g.maps.get(x)
        if cin is None:
            return
        rank = rank_of(x)
        axes = node.attributes.get_ints("axes", None)
        if node.op_type in ("ArgMax", "ArgMin"):
            axes = [node.attributes.get_int("axis", 0)]
        elif axes is None and input_at(node, 1) is not None:
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
        rank = rank_of(x)
        if rank is None:
            g.pin(x, node, "rank unknown")
            return
        op = node.op_type
        axis = node.attributes.get_int("axis", -1 if op != "Flatten" else 1) % rank
        if op == "Flatten":
            # [d0..d(a-1), da..] -> [prod(d0..d(a-1)), prod(da..)]: channels survive when every other dim on
            # their side of the split is 1.
            dims = static_dims(x)
            side = list(range(axis)) if cin.axis < axis else list(range(axis, rank))
            if g.flatten_blocks and dims is not None and cin.axis == axis:
                # channel c becomes the run of features [c * block, (c + 1) * block)
                block = int(np.prod(dims[axis + 1:]))
                g.maps[node.outputs[0]] = ChannelMap(1, np.repeat(cin.atoms, block), np.repeat(cin.zero, block))
                return
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
    """Reshape (see ``_reshape``), Squeeze, Unsqueeze, Transpose, Gather on another axis: channels follow their
    axis to its new position."""

    def propagate(self, g, node):
        x = node.inputs[0]
        cin = g.maps.get(x)
        if cin is None:
            for v in node.inputs[1:]:
                g.pin(v, node, f"channels used as {node.op_type} parameters")
            return
        if node.op_type == "Reshape":
            found = self._reshape(g, node, cin)
            if isinstance(found, str):
                g.pin(x, node, found)
            else:
                g.maps[node.outputs[0]] = found
            return
        axis = self._new_axis(node, cin)
        if isinstance(axis, str):
            g.pin(x, node, axis)
            return
        g.maps[node.outputs[0]] = ChannelMap(axis, cin.atoms, cin.zero)

    def _reshape(self, g, node: ir.Node, cin: ChannelMap) -> ChannelMap | str:
        """Where the channel axis goes: to an axis of its own; split into (blocks, block size), as attention
        splits hidden units into heads (each block's channels are united: whole blocks go); or merged with
        its neighbour (each channel repeated over the neighbour's positions)."""
        src, dst = static_dims(node.inputs[0]), static_dims(node.outputs[0])
        if src is None or dst is None or const_array(input_at(node, 1)) is None:
            return "Reshape with unknown shapes"
        c, n = cin.axis, len(cin)

        def prod(dims) -> int:
            return int(np.prod(dims)) if dims else 1

        pre, post = prod(src[:c]), prod(src[c + 1:])
        for j in range(len(dst)):
            if prod(dst[:j]) == pre and dst[j] == n and prod(dst[j + 1:]) == post:
                return ChannelMap(j, cin.atoms, cin.zero)
        for j in range(len(dst) - 1):
            if prod(dst[:j]) == pre and dst[j] * dst[j + 1] == n and prod(dst[j + 2:]) == post and dst[j] > 1:
                blocks = cin.atoms.reshape(dst[j], dst[j + 1])
                for row in blocks:
                    g.unite(np.full(len(row), row[0]), row)
                return ChannelMap(j, blocks[:, 0].copy(), cin.zero.reshape(dst[j], dst[j + 1]).all(axis=1))
        for j in range(len(dst)):
            if c + 1 < len(src) and prod(dst[:j]) == pre and dst[j] == n * src[c + 1] and prod(dst[j + 1:]) == prod(src[c + 2:]):
                return ChannelMap(j, np.repeat(cin.atoms, src[c + 1]), np.repeat(cin.zero, src[c + 1]))
            if c >= 1 and prod(dst[:j]) == prod(src[:c - 1]) and dst[j] == src[c - 1] * n and prod(dst[j + 1:]) == post:
                return ChannelMap(j, np.tile(cin.atoms, src[c - 1]), np.tile(cin.zero, src[c - 1]))
        return "Reshape mixes the channel axis with others"

    def _new_axis(self, node: ir.Node, cin: ChannelMap) -> int | str:
        op, rank, c = node.op_type, rank_of(node.inputs[0]), cin.axis
        if rank is None:
            return "rank unknown"
        if op == "Transpose":
            perm = node.attributes.get_ints("perm", list(reversed(range(rank))))
            return list(perm).index(c)
        if op in ("Squeeze", "Unsqueeze"):
            axes = node.attributes.get_ints("axes", None)
            if axes is None and input_at(node, 1) is not None:
                found = const_array(node.inputs[1])
                if found is None:
                    return f"{op} axes are not constant"
                axes = found.reshape(-1).tolist()
            if op == "Squeeze":
                dims = static_dims(node.inputs[0])
                if axes is None:
                    if dims is None:
                        return "Squeeze of unknown dims"
                    axes = [i for i, d in enumerate(dims) if d == 1]
                axes = [int(a) % rank for a in axes]
                if c in axes:
                    return "Squeeze removes the channel axis"
                return c - sum(1 for a in axes if a < c)
            out_rank = rank_of(node.outputs[0])
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
            idx_rank = rank_of(node.inputs[1])
            if idx_rank is None:
                return "rank unknown"
            return c if c < axis else c + idx_rank - 1
        return f"no rule for {op}"

    def materialise(self, edit, node):
        if node.op_type != "Reshape":
            return
        keep = edit.kept(node.outputs[0])
        if keep is None:
            return
        shape = const_array(node.inputs[1]).copy()
        shape[edit.axis(node.outputs[0])] = len(keep)  # explicit: a 0 (copy) or -1 there would give the old size
        edit.set_const(node, 1, shape)


class ConcatHandler(Handler):
    """Concat along the channel axis lays its inputs' channels end to end (an input without channels of
    its own becomes a block of fixed channels); along another axis it unites them position by position."""

    def propagate(self, g, node):
        out = node.outputs[0]
        rank = rank_of(out)
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
                    dims = static_dims(v)
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
        if split is None and input_at(node, 1) is not None:
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
        rank = rank_of(x)
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
        if keep is None or edit.axis(node.inputs[0]) != node.attributes.get_int("axis", 0) % rank_of(node.inputs[0]):
            return
        sizes = [len(edit.kept(o)) if edit.kept(o) is not None else edit.length(o) for o in node.outputs]
        if "num_outputs" in node.attributes:
            del node.attributes["num_outputs"]
        if "split" in node.attributes:
            node.attributes["split"] = ir.AttrInt64s("split", sizes)
        elif input_at(node, 1) is not None:
            edit.set_const(node, 1, np.array(sizes, dtype=np.int64))
        else:
            edit.add_const_input(node, np.array(sizes, dtype=np.int64))


