"""The channel dependency graph: which channels of which tensors must be removed together.

Every channel a prunable layer produces is an *atom*. A tensor's channel axis holds a sequence of
atoms (a :class:`ChannelMap`): a Conv's output holds its own new atoms, a Relu's output the same atoms
as its input, a Concat's output its inputs' atoms one after the other. An element-wise op between two
feature maps unites their atoms position by position (a residual Add: channel i of one branch goes
with channel i of the other). Atoms united this way form one *component*, removed or kept as a unit;
the layers whose atoms meet in components form one *group*, pruned at one ratio.

Propagation goes through the explicit handler table in :mod:`.handlers`. A node whose op has no handler,
or whose handler cannot follow the channels (a Softmax over channels, a Reshape that mixes them), is a
*barrier*: the atoms reaching it are pinned, their groups are not pruned, and the plan names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir


@dataclass
class ChannelMap:
    """The atoms along ``axis`` of one tensor, and which of those channels are provably all zero."""

    axis: int
    atoms: np.ndarray  # int64, one per channel
    zero: np.ndarray  # bool, one per channel

    def __len__(self) -> int:
        return len(self.atoms)


@dataclass
class Source:
    """A layer whose output channels are new atoms (a Conv, Gemm, MatMul with constant weights), or a
    block of fixed channels (``fixed``: e.g. a graph input concatenated with a feature map)."""

    index: int
    node: ir.Node | None
    first: int
    channels: int
    fixed: str | None = None

    @property
    def name(self) -> str:
        return self.node.name if self.node is not None else "(fixed)"


@dataclass(frozen=True)
class Barrier:
    """A node where channels stop: the atoms reaching it are pinned."""

    node: str
    op_type: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"node": self.node, "op_type": self.op_type, "reason": self.reason}


@dataclass
class DependencyGraph:
    """The result of propagation over a model: sources, atom components, maps, barriers."""

    model: ir.Model
    sources: list[Source] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)  # union-find over atoms
    atom_source: list[int] = field(default_factory=list)
    maps: dict[ir.Value, ChannelMap] = field(default_factory=dict)
    pinned: set[int] = field(default_factory=set)  # atoms
    pin_reasons: dict[int, Barrier] = field(default_factory=dict)  # atom -> first barrier that pinned it
    barriers: list[Barrier] = field(default_factory=list)
    needed: set[int] = field(default_factory=set)  # atoms consumed by a reducing op while not all zero
    importance: dict[str, np.ndarray] = field(default_factory=dict)  # criterion -> per atom
    bn_gamma: np.ndarray | None = None
    #: a Flatten of [N, C, H, W] carries each channel as a block of H*W features (a dense layer after it is cut
    #: by blocks); off, such a Flatten is a barrier (see build_dependency_graph)
    flatten_blocks: bool = False

    # -- atoms and sources -------------------------------------------------------------------

    def new_source(self, node: ir.Node | None, channels: int, *, fixed: str | None = None) -> Source:
        first = len(self.parent)
        src = Source(len(self.sources), node, first, channels, fixed)
        self.sources.append(src)
        self.parent.extend(range(first, first + channels))
        self.atom_source.extend([src.index] * channels)
        if fixed is not None:
            self.pinned.update(range(first, first + channels))
        return src

    def atoms_of(self, src: Source) -> np.ndarray:
        return np.arange(src.first, src.first + src.channels, dtype=np.int64)

    def find(self, a: int) -> int:
        parent = self.parent
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    def unite(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    # -- barriers ----------------------------------------------------------------------------

    def pin(self, value: ir.Value | None, node: ir.Node | None, reason: str) -> None:
        """Pin the atoms of ``value`` (if it carries any) at ``node``, recording the barrier once."""
        cmap = self.maps.get(value) if value is not None else None
        if cmap is None or len(cmap) == 0:
            return
        barrier = Barrier(node.name if node is not None else (value.name or ""), node.op_type if node is not None else "output", reason)
        if barrier not in self.barriers:
            self.barriers.append(barrier)
        for a in cmap.atoms.tolist():
            self.pinned.add(a)
            self.pin_reasons.setdefault(a, barrier)

    def consume(self, cmap: ChannelMap | None) -> None:
        """A reducing op (Conv, Gemm, MatMul) reads these channels: a nonzero one is needed."""
        if cmap is not None:
            self.needed.update(cmap.atoms[~cmap.zero].tolist())

    def add_importance(self, criterion: str, atoms: np.ndarray, values: np.ndarray) -> None:
        arr = self.importance.setdefault(criterion, np.zeros(0))
        if len(arr) < len(self.parent):
            arr = np.concatenate([arr, np.zeros(len(self.parent) - len(arr))])
        np.add.at(arr, atoms, values)
        self.importance[criterion] = arr
