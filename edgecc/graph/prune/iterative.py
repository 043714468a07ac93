"""Pruning with least-squares recovery, in one shot or in steps: remove some channels, re-fit the layers that
read them against the original model, measure again, remove more.

Each step ranks channels on the model as recovered so far, so a channel the earlier re-fits made redundant goes
first. The channel count of every group follows a straight line from the original count to the count one-shot
pruning at the same ratio keeps, so both end at the same FLOPs and the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ...errors import BadInputError
from ..passes import fold_shape_computations
from .allocate import ALLOCATIONS, DEFAULT_ALLOCATION, Allocation, sensitivity_allocation
from .compensate import measure
from .materialise import materialise
from .plan import PruningPlan, build_dependency_graph, plan_pruning
from .recover import DEFAULT_MAX_ROWS, RecoveryResult, kept_outputs, recover_pruned


@dataclass
class PruningStep:
    """One step: channels kept over all groups after it, and what the re-fit did."""

    kept: int
    recovery: RecoveryResult

    def to_json(self) -> dict[str, object]:
        return {"kept": self.kept, **self.recovery.to_json()}


@dataclass
class RecoveredPruning:
    """The pruned, recovered model (the one given, changed in place), the one-shot plan whose channel counts it
    reached, and each step."""

    model: ir.Model
    plan: PruningPlan
    steps: list[PruningStep] = field(default_factory=list)
    allocation: Allocation | None = None  # None: uniform

    def to_json(self) -> dict[str, object]:
        return {"plan": self.plan.to_json(), "steps": [s.to_json() for s in self.steps],
                "allocation": self.allocation.to_json() if self.allocation is not None else {"method": "uniform"}}


def step_counts(targets: dict[str, tuple[int, int]], step: int, steps: int) -> dict[str, int]:
    """Kept channels per group (a layer of it -> (original count, final count)) after ``step`` of ``steps``."""
    return {k: int(round(n - (n - t) * step / steps)) for k, (n, t) in targets.items()}


def prune_iteratively(
    model: ir.Model,
    ratio: float,
    steps: int,
    feeds: list[dict[str, np.ndarray]],
    *,
    criterion: str = "activation",
    round_to: int = 1,
    round_from: int = 0,
    exclude: set[str] | None = None,
    flatten_blocks: bool = False,
    ridge: float | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    allocation: str = "uniform",
) -> RecoveredPruning:
    """Prune ``model`` in place by ``ratio`` (each group as ``plan_pruning`` decides) in ``steps`` steps, with
    least-squares recovery against the unpruned model on ``feeds`` (real samples) after each; ``steps=1`` is
    one-shot pruning followed by recovery; ``flatten_blocks``: see ``build_dependency_graph``. Removed channels' means are folded into biases before each re-fit
    (mean compensation: what stays for a layer that cannot be re-fitted). ``allocation`` "sensitivity": the kept
    count of each group is chosen by measured output error at the FLOPs uniform pruning by ``ratio`` leaves
    (edgecc.graph.prune.allocate); "uniform": every group loses ``ratio`` of its channels."""
    if steps < 1:
        raise BadInputError(f"pruning in steps needs at least one step, got {steps}")
    if not feeds:
        raise BadInputError("pruning with recovery needs calibration samples: none were given")
    if allocation not in ALLOCATIONS:
        raise BadInputError(f"unknown --allocation '{allocation}'; known: {', '.join(ALLOCATIONS)}")
    original = model.clone()
    fold_shape_computations(model)
    graph = build_dependency_graph(model, flatten_blocks=flatten_blocks)
    means = measure(graph, feeds)
    options = dict(criterion=criterion, round_to=round_to, round_from=round_from, exclude=exclude)
    chosen = None
    if allocation == "sensitivity":
        chosen = sensitivity_allocation(original, model, graph, means, feeds, ratio=ratio, flatten_blocks=flatten_blocks,
                                        seed=seed, **options)
    one_shot = plan_pruning(graph, ratio=ratio, kept_counts=chosen.kept if chosen else None, **options)
    # every layer of a group names it: a layer cut to one channel is no longer a source, the others still are
    targets = {layer: (g.channels, g.kept) for g in one_shot.groups if g.frozen is None for layer in g.layers}
    kept_total: dict[str, np.ndarray] = {}
    result = RecoveredPruning(model, one_shot, allocation=chosen)
    for step in range(1, steps + 1):
        if step > 1:
            graph = build_dependency_graph(model, flatten_blocks=flatten_blocks)
            means = measure(graph, feeds)
        plan = plan_pruning(graph, ratio=ratio, kept_counts=step_counts(targets, step, steps), **options)
        for name, keep in kept_outputs(plan).items():
            kept_total[name] = kept_total[name][keep] if name in kept_total else keep
        materialise(plan, means)
        recovery = recover_pruned(original, model, feeds, kept=kept_total, ridge=ridge, max_rows=max_rows, seed=seed)
        result.steps.append(PruningStep(sum(g.kept for g in plan.groups), recovery))
    return result


def prune_model(model: ir.Model, ratio: float | None, feeds: list[dict[str, np.ndarray]] | None, *,
                criterion: str = "auto", round_to: int = 1, round_from: int = 0, exclude: set[str] | None = None,
                zero_channels: bool = False, recover: bool = True, steps: int = 1, allocation: str = "auto",
                ) -> tuple[ir.Model, PruningPlan, RecoveredPruning | None]:
    """The pruning ``edgecc prune`` and the ``--prune`` graph step share. With real samples ``feeds`` and
    ``recover``: :func:`prune_iteratively` (criterion "auto": activation; allocation "auto": DEFAULT_ALLOCATION).
    Otherwise one plan materialised, removed channels' means folded into biases when ``feeds`` are given
    (criterion "auto": activation with feeds, else l1). Returns (pruned model, plan, the recovery or None)."""
    if criterion == "auto":
        criterion = "activation" if feeds is not None else "l1"
    if feeds is not None and recover:
        result = prune_iteratively(model, ratio, steps, feeds, criterion=criterion, round_to=round_to,
                                   round_from=round_from, exclude=exclude,
                                   allocation=DEFAULT_ALLOCATION if allocation == "auto" else allocation)
        return result.model, result.plan, result
    fold_shape_computations(model)
    graph = build_dependency_graph(model)
    means = measure(graph, feeds) if feeds is not None else None
    plan = plan_pruning(graph, ratio=ratio, criterion=criterion, round_to=round_to, round_from=round_from,
                        exclude=exclude, zero_channels=zero_channels)
    return materialise(plan, means), plan, None
