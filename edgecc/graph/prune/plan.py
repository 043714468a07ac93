"""Build the dependency graph of a model and decide which channels to remove: the pruning plan."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ...errors import BadInputError
from .depgraph import Barrier, DependencyGraph
from .handlers import HANDLERS

CRITERIA = ("l1", "l2", "bn-gamma", "activation")  # activation: measured on data (prune.compensate)


def build_dependency_graph(model: ir.Model, *, flatten_blocks: bool = False) -> DependencyGraph:
    """Propagate channel maps through ``model``'s main graph in order; graph outputs are pinned. With
    ``flatten_blocks``, a Flatten that merges channels with the spatial axes passes them on as blocks of features
    (a classifier head after a conv stack can then be cut) instead of stopping them."""
    g = DependencyGraph(model, flatten_blocks=flatten_blocks)
    for node in model.graph:
        handler = HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        has_subgraph = any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for a in node.attributes.values())
        if handler is None or has_subgraph:
            why = "has a subgraph" if has_subgraph else f"no pruning handler for {node.domain + '::' if node.domain else ''}{node.op_type}"
            for v in node.inputs:
                g.pin(v, node, why)
            if has_subgraph:  # a subgraph may read outer tensors without listing them as inputs
                for inner in _subgraph_nodes(node):
                    for v in inner.inputs:
                        g.pin(v, node, "read inside a subgraph")
            continue
        handler.propagate(g, node)
    for v in model.graph.outputs:
        g.pin(v, None, "graph output (outputs are never changed)")
    n = len(g.parent)
    for k, arr in g.importance.items():
        if len(arr) < n:
            g.importance[k] = np.concatenate([arr, np.zeros(n - len(arr))])
    return g


def _subgraph_nodes(node: ir.Node):
    for attr in node.attributes.values():
        graphs = [attr.value] if attr.type == ir.AttributeType.GRAPH else list(attr.value) if attr.type == ir.AttributeType.GRAPHS else []
        for graph in graphs:
            yield from graph.all_nodes()


@dataclass
class ChannelGroup:
    """Layers whose output channels are coupled, and the decision for them. ``channels`` counts the units removed
    or kept as a whole: single channels, or whole blocks such as attention heads (see ShapeOpHandler._reshape)."""

    id: int
    layers: list[str]
    channels: int
    kept: int
    frozen: str | None = None
    criterion: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "layers": list(self.layers), "channels": self.channels, "kept": self.kept,
                "frozen": self.frozen, "criterion": self.criterion}


@dataclass
class PruningPlan:
    """Which atoms stay (``keep_root[find(atom)]``), per group, and why groups were left alone."""

    graph: DependencyGraph
    groups: list[ChannelGroup]
    keep_root: np.ndarray
    mode: str
    ratio: float | None = None
    criterion: str | None = None
    round_to: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def barriers(self) -> list[Barrier]:
        return self.graph.barriers

    @property
    def removed_channels(self) -> int:
        return sum(g.channels - g.kept for g in self.groups)

    def to_json(self) -> dict[str, object]:
        return {
            "mode": self.mode, "ratio": self.ratio, "criterion": self.criterion, "round_to": self.round_to,
            "groups": [g.to_json() for g in self.groups], "barriers": [b.to_json() for b in self.barriers],
            "removed_channels": self.removed_channels, "notes": list(self.notes),
        }


def _components(g: DependencyGraph) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """(group id -> component roots, root -> atoms); a group is a connected set of sources."""
    comps: dict[int, list[int]] = {}
    for a in range(len(g.parent)):
        comps.setdefault(g.find(a), []).append(a)
    parent = list(range(len(g.sources)))

    def find(s: int) -> int:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for atoms in comps.values():
        first = find(g.atom_source[atoms[0]])
        for a in atoms[1:]:
            other = find(g.atom_source[a])
            if other != first:
                parent[max(first, other)] = min(first, other)
                first = min(first, other)
    groups: dict[int, list[int]] = {}
    for root in comps:
        groups.setdefault(find(g.atom_source[root]), []).append(root)
    return groups, comps


def _keep_every_tensor_nonempty(g: DependencyGraph, keep_root: np.ndarray, scores: np.ndarray | None) -> bool:
    """A tensor that carries only part of a group (a Split or Slice output, one input of a Concat) must keep a
    channel: where the plan emptied one, its most important channel is kept after all. True if any was."""
    changed = False
    for m in g.maps.values():
        roots = [g.find(a) for a in m.atoms.tolist()]
        if roots and not any(keep_root[r] for r in roots):
            best = max(zip(m.atoms.tolist(), roots), key=lambda ar: scores[ar[0]] if scores is not None else 0.0)
            keep_root[best[1]] = True
            changed = True
    return changed


def check_exclude(model: ir.Model, exclude: list[str] | None) -> set[str]:
    names = {n.name for n in model.graph if n.name}
    unknown = [e for e in exclude or [] if e not in names]
    if unknown:
        from ...errors import suggest

        hint = suggest(unknown[0], sorted(names))
        raise BadInputError(f"--exclude names node(s) the model does not have: {', '.join(unknown)}{hint}")
    return set(exclude or [])


def plan_pruning(
    g: DependencyGraph,
    *,
    ratio: float | None = None,
    criterion: str = "l1",
    round_to: int = 1,
    exclude: set[str] | None = None,
    zero_channels: bool = False,
    round_from: int = 0,
    kept_counts: dict[str, int] | None = None,
) -> PruningPlan:
    """Decide the kept channels: with ``ratio``, the least important ``ratio`` of each group's channels go
    (rounded so the kept count is a multiple of ``round_to`` in groups of at least ``round_from`` channels;
    at least one stays; ``kept_counts`` sets the count of kept channels of the groups it names by their first layer,
    as pruning in steps does); with ``zero_channels``,
    exactly the channels that are all zero wherever they are consumed go (which includes channels nothing
    consumes, e.g. those a Slice drops)."""
    if zero_channels == (ratio is not None):
        raise BadInputError("give either a ratio or zero-channel elimination")
    if ratio is not None and not 0.0 < ratio < 1.0:
        raise BadInputError(f"--ratio must be between 0 and 1 (exclusive), got {ratio:g}")
    if criterion not in CRITERIA:
        raise BadInputError(f"unknown --criterion '{criterion}'; known: {', '.join(CRITERIA)}")
    if criterion == "activation" and "activation" not in g.importance:
        raise BadInputError("--criterion activation is measured on data: give --calibration DATA (real samples)")
    if round_to < 1:
        raise BadInputError(f"--round-to must be a positive integer, got {round_to}")
    exclude = exclude or set()
    groups_map, comps = _components(g)
    keep_root = np.ones(len(g.parent), bool)
    groups: list[ChannelGroup] = []
    group_roots: list[list[int]] = []
    notes: list[str] = []
    for gid, roots in sorted(groups_map.items()):
        sources = sorted({g.atom_source[a] for r in roots for a in comps[r]})
        srcs = [g.sources[s] for s in sources]
        if all(s.fixed for s in srcs):
            continue
        layers = [s.name for s in srcs if not s.fixed]
        n = len(roots)
        frozen = None
        pinned = [a for r in roots for a in comps[r] if a in g.pinned]
        if pinned:
            b = g.pin_reasons.get(pinned[0])
            frozen = f"{b.op_type} '{b.node}': {b.reason}" if b else next(s.fixed for s in srcs if s.fixed)
        elif any(name in exclude for name in layers):
            frozen = "excluded by --exclude"
        group = ChannelGroup(len(groups), layers, n, n, frozen)
        groups.append(group)
        group_roots.append(roots)
        if frozen:
            continue
        if zero_channels:
            removable = [r for r in roots if not any(a in g.needed for a in comps[r])]
            if len(removable) == n:
                removable = removable[1:]  # never all channels of a group
            for r in removable:
                keep_root[r] = False
            group.kept = n - len(removable)
            continue
        used = criterion
        scores = g.importance.get(criterion)
        if criterion == "bn-gamma" and (scores is None or not any(scores[a] for r in roots for a in comps[r])):
            used = "l1"
            scores = g.importance.get("l1")
        per_comp = np.array([sum(scores[a] for a in comps[r]) if scores is not None else 0.0 for r in roots])
        step = round_to if n >= round_from else 1
        keep = int(step * max(1, round(n * (1.0 - ratio) / step)))
        if kept_counts is not None and layers[0] in kept_counts:
            keep = kept_counts[layers[0]]
        keep = min(n, max(1, keep))
        group.kept, group.criterion = keep, used
        if keep == n:
            continue
        order = np.argsort(-per_comp, kind="stable")
        for i in order[keep:]:
            keep_root[roots[i]] = False
    if _keep_every_tensor_nonempty(g, keep_root, g.importance.get(criterion if criterion in g.importance else "l1")):
        for group, roots in zip(groups, group_roots):
            group.kept = sum(1 for r in roots if keep_root[r])
    if criterion == "bn-gamma" and any(gr.criterion == "l1" for gr in groups):
        notes.append("groups without a BatchNormalization were ranked by l1")
    return PruningPlan(g, groups, keep_root, "zero-channels" if zero_channels else "ratio", ratio, criterion if ratio else None,
                       round_to, notes)
