"""What every pruning handler shares: shape helpers, the Handler base, registering a new source."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..depgraph import ChannelMap, DependencyGraph


def rank_of(v: ir.Value | None) -> int | None:
    return None if v is None or v.shape is None else len(v.shape)


def static_dims(v: ir.Value | None) -> list[int] | None:
    if v is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
        return None
    return list(v.shape)


def input_at(node: ir.Node, i: int) -> ir.Value | None:
    return node.inputs[i] if len(node.inputs) > i else None


def norms(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """L1 and L2 norms of each slice of ``w`` along ``axis``, each divided by its mean so that layers of
    different scale weigh alike when a coupled group sums them."""
    moved = np.moveaxis(np.abs(w.astype(np.float64)), axis, 0).reshape(w.shape[axis], -1)
    l1, l2 = moved.sum(1), np.sqrt((moved**2).sum(1))
    return l1 / (l1.mean() or 1.0), l2 / (l2.mean() or 1.0)


def new_output(g: DependencyGraph, node: ir.Node, out: ir.Value, w: np.ndarray, out_axis_w: int, bias: np.ndarray | None,
                value_axis: int) -> None:
    """Register ``node`` as a source of ``w.shape[out_axis_w]`` channels on ``out``'s ``value_axis``."""
    n = w.shape[out_axis_w]
    if n < 2:  # one channel cannot be pruned (never all channels of a group)
        return
    src = g.new_source(node, n)
    atoms = g.atoms_of(src)
    l1, l2 = norms(w, out_axis_w)
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


