"""Non-uniform pruning: how many channels each group keeps, chosen by measured sensitivity under a FLOPs budget.

A uniform ratio cuts a 16-channel residual stream as hard as a 128-channel expansion. Here every group is cut
alone to a few counts around the uniform one, the layers reading it are re-fitted (least-squares recovery, as
the real pruning does), and the model's output error is measured on calibration samples the re-fit did not
see. Then, starting from the unpruned model, one step of channels at a time goes from the group whose next step
costs the least output error per FLOP saved, until the model's FLOPs are down to what uniform pruning at the
same ratio leaves; steps are then given back while the FLOPs stay within that.
Errors of groups cut together are taken as additive (first order), and no group is cut below the deepest count
measured (twice the uniform ratio), so the allocation never extrapolates a sensitivity curve.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx_ir as ir

from ..analysis import node_flops
from ..io import save_model
from .compensate import reads_channels
from .depgraph import DependencyGraph
from .materialise import materialise
from .plan import ChannelGroup, build_dependency_graph, plan_pruning
from .recover import VALIDATION, kept_outputs, recover_pruned

ALLOCATIONS = ("uniform", "sensitivity")
#: what --allocation auto means where calibration samples and recovery are given (else uniform): better than uniform
#: at the same FLOPs on every trained net measured (benchmarks/results/prune_allocation.md), for ~4 extra
#: recoveries per group
DEFAULT_ALLOCATION = "sensitivity"
#: removed fractions measured per group, as multiples of the ratio (2.0: the deepest cut a group can get)
LEVELS = (0.5, 1.0, 1.5, 2.0)
#: rows per re-fitted layer while measuring (the final pruning uses recover.DEFAULT_MAX_ROWS, 4x as many): the
#: ranking of groups, not the exact error, is what the allocation needs
MEASURE_MAX_ROWS = 4096


@dataclass
class GroupSensitivity:
    """One group's curve: output error (relative squared error of the model's outputs on held-out calibration samples)
    with only this group cut to each count in ``kept`` (descending, the first the full count, error 0) and
    recovered; ``step``: the unit its count moves by (round_to for large groups)."""

    layer: str
    channels: int
    step: int
    kept: list[int]
    error: list[float]
    allocated: int = 0

    def error_at(self, k: float) -> float:
        return float(np.interp(k, self.kept[::-1], self.error[::-1]))

    def to_json(self) -> dict[str, object]:
        return {"layer": self.layer, "channels": self.channels, "kept": self.kept, "error": self.error,
                "allocated": self.allocated}


@dataclass
class Allocation:
    """Kept channels per group (by its first layer, as ``plan_pruning(kept_counts=)`` takes them), the FLOPs of
    the unpruned model, of uniform pruning (the budget) and of this allocation (as FlopsModel counts them)."""

    kept: dict[str, int]
    flops_before: float
    flops_budget: float
    flops_planned: float
    groups: list[GroupSensitivity] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"method": "sensitivity", "flops_before": self.flops_before, "flops_budget": self.flops_budget,
                "flops_planned": self.flops_planned, "groups": [g.to_json() for g in self.groups]}


class FlopsModel:
    """The model's FLOPs as a function of each group's kept fraction r_g: every node costs its unpruned FLOPs
    times the kept fraction of its output's channels, and a dense layer (Conv, Gemm, MatMul) also times that of
    its input's. A tensor's kept fraction is the mean over its channels of their groups' r (1 outside groups)."""

    def __init__(self, g: DependencyGraph, groups: list[ChannelGroup]) -> None:
        by_layer = {s.name: s for s in g.sources if s.node is not None}
        self.index = {grp.layers[0]: i for i, grp in enumerate(groups)}
        group_of: dict[int, int] = {}
        for i, grp in enumerate(groups):
            for name in grp.layers:
                for a in g.atoms_of(by_layer[name]).tolist():
                    group_of[g.find(a)] = i
        rows: list[tuple[float, np.ndarray, np.ndarray]] = []
        for node in g.model.graph:
            flops = node_flops(node) or 0
            if flops <= 0:
                continue
            x = node.inputs[0] if node.inputs else None
            y = node.outputs[0] if node.outputs else None
            fy = self._fraction(g, y, group_of, len(groups))
            fx = self._fraction(g, x, group_of, len(groups))
            if not (_dense(node) and fx is not None and fy is not None):
                rows.append((float(flops), None, fy if fy is not None else fx))  # element-wise, or depthwise conv
                continue
            bias = _bias_flops(node)  # a bias add scales with the outputs alone
            rows += [(float(flops - bias), fx, fy), (float(bias), None, fy)]
        self.flops = np.array([r[0] for r in rows])
        n = len(groups) + 1  # the last column: channels outside every group (r = 1)
        self.x = np.array([r[1] if r[1] is not None else _one(n) for r in rows]).reshape(len(rows), n)
        self.y = np.array([r[2] if r[2] is not None else _one(n) for r in rows]).reshape(len(rows), n)

    @staticmethod
    def _fraction(g: DependencyGraph, v: ir.Value | None, group_of: dict[int, int], n: int) -> np.ndarray | None:
        if v is None or v not in g.maps or len(g.maps[v]) == 0:
            return None
        w = np.zeros(n + 1)
        for a in g.maps[v].atoms.tolist():
            w[group_of.get(g.find(a), n)] += 1.0
        return w / w.sum()

    def __call__(self, fractions: np.ndarray) -> float:
        r = np.append(fractions, 1.0)
        return float(self.flops @ ((self.x @ r) * (self.y @ r)))


def _dense(node: ir.Node) -> bool:
    if node.op_type == "Conv":
        return node.attributes.get_int("group", 1) == 1
    return node.op_type in ("Gemm", "MatMul") or reads_channels(node)


def _bias_flops(node: ir.Node) -> int:
    y = node.outputs[0]
    if node.op_type not in ("Conv", "Gemm") or len(node.inputs) < 3 or node.inputs[2] is None or y.shape is None:
        return 0
    dims = [d for d in y.shape]
    return int(np.prod(dims)) if all(isinstance(d, int) for d in dims) else 0


def _one(n: int) -> np.ndarray:
    e = np.zeros(n)
    e[-1] = 1.0
    return e


def _outputs(model: ir.Model, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgecc-allocate-") as tmp:
        path = save_model(model, Path(tmp) / "m.onnx")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return [np.concatenate([o.astype(np.float64).ravel() for o in session.run(None, f)]) for f in feeds]


def _error(got: list[np.ndarray], ref: list[np.ndarray]) -> float:
    return float(sum(((a - b) ** 2).sum() for a, b in zip(got, ref)) / max(sum((b**2).sum() for b in ref), 1e-30))


def _levels(grp: ChannelGroup, step: int, ratio: float) -> list[int]:
    counts = {grp.channels, grp.kept}
    for m in LEVELS:
        removed = min(ratio * m, 0.95)
        counts.add(int(step * max(1, round(grp.channels * (1.0 - removed) / step))))
    return sorted((min(grp.channels, max(1, k)) for k in counts), reverse=True)


def measure_sensitivity(original: ir.Model, model: ir.Model, importance: dict[str, np.ndarray],
                        means: dict[str, np.ndarray], groups: list[ChannelGroup], feeds: list[dict[str, np.ndarray]],
                        *, ratio: float, criterion: str, round_to: int, round_from: int, flatten_blocks: bool,
                        exclude: set[str] | None = None, seed: int = 0) -> list[GroupSensitivity]:
    """Cut each group of ``groups`` alone (the others whole) to each of a few counts on a copy of ``model``
    (shape computations folded; ``importance`` and ``means`` measured on it), recover against ``original`` and
    measure the output error on ``feeds``: with enough of them, on every VALIDATION-th, the others fitted on (an
    error measured on the samples fitted to favours the groups whose readers have the most weights to fit)."""
    fit, probe = feeds, feeds
    if len(feeds) >= 2 * VALIDATION:
        probe = feeds[VALIDATION - 1::VALIDATION]
        fit = [f for i, f in enumerate(feeds) if i % VALIDATION != VALIDATION - 1]
    ref = _outputs(original, probe)
    full = {grp.layers[0]: grp.channels for grp in groups}
    curves = []
    for grp in groups:
        step = round_to if grp.channels >= round_from else 1
        curve = GroupSensitivity(grp.layers[0], grp.channels, step, [grp.channels], [0.0])
        for k in _levels(grp, step, ratio)[1:]:
            trial = model.clone()
            g = build_dependency_graph(trial, flatten_blocks=flatten_blocks)
            g.importance.update(importance)
            plan = plan_pruning(g, ratio=ratio, criterion=criterion, exclude=exclude, kept_counts={**full, grp.layers[0]: k})
            materialise(plan, means)
            recover_pruned(original, trial, fit, kept=kept_outputs(plan), max_rows=MEASURE_MAX_ROWS, seed=seed)
            curve.kept.append(k)
            curve.error.append(max(_error(_outputs(trial, probe), ref), curve.error[-1]))  # monotone: noise aside
        curves.append(curve)
    return curves


def _down(k: int, step: int) -> int:
    """The next count below ``k`` on the grid of multiples of ``step`` (the group's full count is off-grid)."""
    return k - step if k % step == 0 else k - k % step


def _up(k: int, step: int, n: int) -> int:
    return min(n, k - k % step + step)


def allocate(curves: list[GroupSensitivity], flops: FlopsModel, budget: float) -> dict[str, int]:
    """Kept counts per group: from every group whole, take one step from the group whose next step adds the
    least output error per FLOP saved, until the FLOPs are within ``budget`` (or every group is at its deepest
    measured count); then give a step back, while the FLOPs stay within ``budget``, to the group it spares the
    most error per FLOP, so the result falls short of ``budget`` by less than any one step's FLOPs."""
    kept = [c.channels for c in curves]
    order = [flops.index[c.layer] for c in curves]

    def total(k: list[int]) -> float:
        r = np.ones(len(flops.index))
        r[order] = [ki / c.channels for ki, c in zip(k, curves)]
        return flops(r)

    def best_move(now: float, down: bool) -> int | None:
        best, best_key = None, None
        for i, c in enumerate(curves):
            nxt = _down(kept[i], c.step) if down else _up(kept[i], c.step, c.channels)
            if (down and nxt < c.kept[-1]) or (not down and nxt <= kept[i]):
                continue
            trial = kept[:i] + [nxt] + kept[i + 1:]
            moved = abs(now - total(trial))
            if moved <= 0 or (not down and total(trial) > budget):
                continue
            per_flop = abs(c.error_at(nxt) - c.error_at(kept[i])) / moved
            key = (per_flop, -moved) if down else (-per_flop, moved)
            if best_key is None or key < best_key:
                best, best_key = i, key
        return best

    while (now := total(kept)) > budget and (i := best_move(now, down=True)) is not None:
        kept[i] = _down(kept[i], curves[i].step)
    while (i := best_move(total(kept), down=False)) is not None:
        kept[i] = _up(kept[i], curves[i].step, curves[i].channels)
    for c, k in zip(curves, kept):
        c.allocated = k
    return {c.layer: k for c, k in zip(curves, kept)}


def sensitivity_allocation(original: ir.Model, model: ir.Model, graph: DependencyGraph, means: dict[str, np.ndarray],
                           feeds: list[dict[str, np.ndarray]], *, ratio: float, criterion: str, round_to: int,
                           round_from: int, exclude: set[str] | None, flatten_blocks: bool, seed: int = 0) -> Allocation:
    """The kept counts per group that cost the same FLOPs as uniform pruning of ``model`` (shape computations
    folded, ``graph`` its dependency graph measured on ``feeds``, ``means`` its channel means) at ``ratio`` with the
    least measured output error. ``model`` and ``graph`` are left as they are."""
    uniform = plan_pruning(graph, ratio=ratio, criterion=criterion, round_to=round_to, round_from=round_from, exclude=exclude)
    groups = [grp for grp in uniform.groups if grp.frozen is None]
    flops = FlopsModel(graph, groups)
    fractions = np.array([grp.kept / grp.channels for grp in groups])
    budget = flops(fractions)
    curves = measure_sensitivity(original, model, graph.importance, means, groups, feeds, ratio=ratio,
                                 criterion=criterion, round_to=round_to, round_from=round_from,
                                 flatten_blocks=flatten_blocks, exclude=exclude, seed=seed)
    kept = allocate(curves, flops, budget)
    planned = flops(np.array([kept[grp.layers[0]] / grp.channels for grp in groups]))
    return Allocation(kept, flops(np.ones(len(groups))), budget, planned, curves)
