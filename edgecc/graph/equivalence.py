"""Check that a rewritten model is the same function as the original: same interface, same values in onnxruntime.

This is the one helper every rewrite (optimize, zero-channel elimination, the fusion rules' tests) is
checked with. Outputs are compared by name; a missing output, a changed shape or dtype, or values
outside the tolerance is a failure, reported with the numbers.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx_ir as ir

from ..errors import EdgeccError, ModelError, VerificationError
from ..profiling.inputs import make_inputs
from ..profiling.verify import OutputError, Tolerance, compare_outputs, reference_outputs
from .io import TensorSpec, save_model

# A rewrite changes only the order of floating-point operations (a BN folded into weights, a fused
# LayerNorm kernel): ~1e-6 relative per op, growing with depth. 1e-4 of the output's range is far
# below any real change of function and above that rounding on 50-layer networks.
REWRITE_TOLERANCE = Tolerance(min_cosine=0.99999, max_rel_error=1e-4)
# Removing channels that are exactly zero changes nothing but summation order.
EXACT_TOLERANCE = Tolerance(min_cosine=0.999999, max_rel_error=1e-5)
# An output whose values are all tiny (a probability map near 0 on random inputs) makes "relative to its range"
# meaningless: absolute differences below this are float32 rounding whatever the tolerance.
ABS_FLOOR = 1e-6


def interface(model: ir.Model) -> tuple[list[TensorSpec], list[TensorSpec]]:
    from .analysis import tensor_spec

    return [tensor_spec(v) for v in model.graph.inputs], [tensor_spec(v) for v in model.graph.outputs]


@dataclass
class Equivalence:
    """The result of comparing two models: interface differences and the output error."""

    interface_changes: list[str] = field(default_factory=list)
    error: OutputError | None = None
    tolerance: Tolerance = REWRITE_TOLERANCE

    @property
    def ok(self) -> bool:
        if self.interface_changes or self.error is None:
            return False
        e = self.error
        return e.within(self.tolerance) or (e.max_abs_error <= ABS_FLOOR and e.cosine >= self.tolerance.min_cosine)

    def describe(self) -> str:
        if self.interface_changes:
            return "; ".join(self.interface_changes)
        if self.error is None:
            return "not compared"
        e = self.error
        return (f"max abs error {e.max_abs_error:.3g} ({e.max_rel_error:.3g} of the output range, max "
                f"{self.tolerance.max_rel_error:g}), cosine {e.cosine:.7f} (min {self.tolerance.min_cosine})")

    def to_json(self) -> dict[str, object]:
        e = self.error
        return {
            "ok": self.ok, "interface_changes": list(self.interface_changes),
            "max_abs_error": None if e is None else e.max_abs_error,
            "max_rel_error": None if e is None else e.max_rel_error,
            "cosine": None if e is None else e.cosine,
            "tolerance": {"min_cosine": self.tolerance.min_cosine, "max_rel_error": self.tolerance.max_rel_error},
        }


def _refines(old: ir.Value, new: ir.Value) -> bool:
    """``new``'s declared shape says at least what ``old``'s did: same rank and every known dim kept (an
    unknown dim of the original may become known, as shape inference learns it)."""
    if old.shape is None:
        return True
    if new.shape is None or len(new.shape) != len(old.shape):
        return False
    # some exporters (paddle2onnx) write an unknown dim as -1
    return all(not isinstance(a, int) or a < 0 or a == b for a, b in zip(old.shape, new.shape))


def interface_changes(before: ir.Model, after: ir.Model) -> list[str]:
    """Every difference in input/output names, dtypes and shapes, one phrase each."""
    changes = []
    for kind, old, new in (("input", before.graph.inputs, after.graph.inputs), ("output", before.graph.outputs, after.graph.outputs)):
        old_names, new_names = [v.name for v in old], [v.name for v in new]
        if old_names != new_names:
            changes.append(f"{kind} names changed: {old_names} -> {new_names}")
        new_by = {v.name: v for v in new}
        for v in old:
            w = new_by.get(v.name)
            if w is None:
                continue
            if v.dtype != w.dtype:
                changes.append(f"{kind} '{v.name}' dtype changed: {v.dtype} -> {w.dtype}")
            if not _refines(v, w):
                shape = lambda x: None if x.shape is None else [d if isinstance(d, int) else -1 for d in x.shape]  # noqa: E731
                changes.append(f"{kind} '{v.name}' shape changed: {shape(v)} -> {shape(w)}")
    return changes


def _run(model: ir.Model, feeds: dict[str, np.ndarray], what: str, error: type[EdgeccError]) -> dict[str, np.ndarray]:
    """run_model, with onnxruntime refusing the model turned into one clear error about ``what``."""
    try:
        return run_model(model, feeds)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types; the message is what matters
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise error(f"onnxruntime cannot run {what}: {first}") from None


def run_model(model: ir.Model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime's outputs (CPU, basic optimisations) for ``feeds``."""
    with tempfile.TemporaryDirectory(prefix="edgecc-eq-") as tmp:
        return reference_outputs(str(save_model(model, Path(tmp) / "m.onnx")), feeds)


def check_equivalent(
    before: ir.Model,
    after: ir.Model,
    feeds: dict[str, np.ndarray] | None = None,
    *,
    tolerance: Tolerance = REWRITE_TOLERANCE,
    seed: int = 0,
    expected: dict[str, np.ndarray] | None = None,
) -> Equivalence:
    """Compare ``after`` with ``before`` on ``feeds`` (seeded random inputs by default).

    The declared interface must be unchanged, and the outputs onnxruntime actually produces must have
    the same shapes and values within ``tolerance``. ``expected`` reuses outputs of ``before`` already computed.
    """
    result = Equivalence(interface_changes=interface_changes(before, after), tolerance=tolerance)
    if result.interface_changes:
        return result
    ins, _ = interface(before)
    feeds = feeds if feeds is not None else make_inputs(before, ins, seed)
    ref = expected if expected is not None else _run(before, feeds, "the model as loaded (input shapes fixed, shapes inferred)", ModelError)
    got = _run(after, feeds, "the rewritten model", VerificationError)
    for name, value in ref.items():
        if name in got and got[name].shape != value.shape:
            result.interface_changes.append(f"output '{name}' computed shape changed: {list(value.shape)} -> {list(got[name].shape)}")
        if name in got and got[name].dtype != value.dtype:
            result.interface_changes.append(f"output '{name}' computed dtype changed: {value.dtype} -> {got[name].dtype}")
    result.error = compare_outputs(ref, got)
    return result
