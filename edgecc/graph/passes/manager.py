"""Run a sequence of onnx_ir passes and record, for each, its time, node counts and whether it changed the model.

onnx_ir's own ``PassManager`` composes passes but keeps no per-pass record; the optimizer and
``--report`` need one, so :class:`ReportingPassManager` runs the same ``PassBase`` objects itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import onnx_ir as ir


def count_nodes(model: ir.Model) -> int:
    """Nodes in the main graph and every subgraph."""
    return sum(1 for _ in model.graph.all_nodes())


@dataclass
class PassRecord:
    """One pass run: wall time in ms, nodes before and after, whether it changed the model, details."""

    name: str
    time_ms: float
    nodes_before: int
    nodes_after: int
    modified: bool
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class ReportingPassManager:
    """Runs ``passes`` in order, ``steps`` times or until a whole step changes nothing.

    Each pass must be an ``onnx_ir.passes.PassBase``; a functional pass's returned model replaces the
    current one. Passes may expose ``last_details`` (a dict) that is copied into their record.

    With ``contain_failures``, a pass that raises is undone (the model is cloned before each pass; tensors
    are shared, so this costs O(nodes)) and its record says ``failed`` with the error: one library pass
    tripping over an unusual graph (e.g. onnx_ir's identity elimination on If branches that return outer
    values) does not stop the others, and the caller still verifies the result end to end.
    """

    def __init__(self, passes: Sequence[ir.passes.PassBase], steps: int = 1, *, contain_failures: bool = False) -> None:
        self.passes = list(passes)
        self.steps = steps
        self.contain_failures = contain_failures
        self.records: list[PassRecord] = []

    def __call__(self, model: ir.Model) -> ir.passes.PassResult:
        any_modified = False
        for _ in range(self.steps):
            step_modified = False
            for p in self.passes:
                before = count_nodes(model)
                backup = model.clone() if self.contain_failures else None
                t0 = time.perf_counter()
                try:
                    result = p(model)
                except Exception as e:  # contained: undone, recorded, reported by the caller
                    if backup is None:
                        raise
                    model = backup
                    cause = e.__cause__ or e
                    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
                    self.records.append(PassRecord(
                        name=pass_name(p), time_ms=round((time.perf_counter() - t0) * 1000.0, 3), nodes_before=before,
                        nodes_after=before, modified=False, details={"failed": f"{type(cause).__name__}: {first}"},
                    ))
                    continue
                elapsed = (time.perf_counter() - t0) * 1000.0
                model = result.model
                after = count_nodes(model)
                modified = bool(result.modified)
                self.records.append(PassRecord(
                    name=pass_name(p), time_ms=round(elapsed, 3), nodes_before=before, nodes_after=after,
                    modified=modified, details=dict(getattr(p, "last_details", {}) or {}),
                ))
                step_modified |= modified
            any_modified |= step_modified
            if not step_modified:
                break
        return ir.passes.PassResult(model, any_modified)


def pass_name(p: object) -> str:
    return getattr(p, "name", None) or type(p).__name__
