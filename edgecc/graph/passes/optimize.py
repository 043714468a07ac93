"""The optimize pipeline: cleanup, constant folding, onnxsim, then fusion rules to a fixed point.

Every pass is recorded (time, nodes before/after, modified); the fusion pass also records how often
each rule fired and, with ``explain``, why rules that matched declined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

from ..io import _fix_ir_version, infer_shapes
from .fusion import Declined, FusionPass
from .manager import PassRecord, ReportingPassManager, count_nodes
from .standard import OnnxSimPass, cleanup_passes, constant_folding_pass

# Fusion can expose more folding (a BN folded into a Conv makes a constant Add foldable into its bias):
# fusion + folding + cleanup are repeated until nothing changes, at most this often.
FUSION_ROUNDS = 4


@dataclass
class OptimizeResult:
    """The optimized model (the input model, changed in place) and what each pass did."""

    model: ir.Model
    nodes_before: int
    nodes_after: int
    records: list[PassRecord]
    fired: dict[str, int]
    declined: list[Declined] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "nodes_before": self.nodes_before, "nodes_after": self.nodes_after,
            "passes": [r.to_json() for r in self.records], "rules_fired": dict(self.fired),
            "rules_declined": [d.to_json() for d in self.declined],
        }


def optimize_model(
    model: ir.Model, *, backend: str | None = None, explain: bool = False, use_onnxsim: bool = True
) -> OptimizeResult:
    """Optimize ``model`` in place (it must have static shapes, as a PreparedModel's has).

    ``backend`` adds that backend's rule pack to the common rules.
    """
    from ..rewrite import rules_for

    before = count_nodes(model)
    fusion = FusionPass(rules_for(backend), name="fusion", explain=explain)
    # Cleanup again after folding: the folder writes Constant nodes (some with value_ints, which onnxsim's
    # checker refuses below opset 12); lifted to initializers they are plain data.
    first = ReportingPassManager(
        [*cleanup_passes(), constant_folding_pass(), *cleanup_passes(), *([OnnxSimPass()] if use_onnxsim else [])],
        contain_failures=True,
    )
    model = first(model).model
    infer_shapes(model)
    rounds = ReportingPassManager([fusion, constant_folding_pass(), *cleanup_passes()], steps=FUSION_ROUNDS,
                                  contain_failures=True)
    model = rounds(model).model
    _fix_ir_version(model)
    infer_shapes(model)
    return OptimizeResult(
        model=model, nodes_before=before, nodes_after=count_nodes(model), records=first.records + rounds.records,
        fired=dict(fusion.counts), declined=sorted(fusion.declined.values(), key=lambda d: (d.rule, d.node)),
    )


def fold_shape_computations(model: ir.Model) -> list[PassRecord]:
    """Cleanup and constant folding only (no onnxsim, no fusion), in place.

    With static input shapes this turns the Shape -> Gather -> Concat chains of exported models into
    constants, so that pruning sees constant Reshape shapes and Pad amounts; BatchNormalization stays
    unfused, so its gammas can still rank channels.
    """
    manager = ReportingPassManager([*cleanup_passes(), constant_folding_pass(), *cleanup_passes()], steps=2,
                                   contain_failures=True)
    manager(model)
    infer_shapes(model)
    return manager.records
