"""What ``edgecc optimize / prune / sparsify / low-rank`` do, behind edgecc.api: load, rewrite, verify, save.

The rewrites themselves are IR transforms in edgecc.graph; this module is the orchestration around them.

Each returns a result with a ``to_json()`` for ``--report``; nothing is written at the output path
unless the rewrite succeeded and (where the rewrite must not change the function) verified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import onnx_ir as ir

from .errors import BadInputError, VerificationError
from .graph.analysis import analyze
from .graph.equivalence import Equivalence, check_equivalent
from .graph.io import PreparedModel, prepare_model, save_model
from .graph.prune.allocate import ALLOCATIONS

if TYPE_CHECKING:
    from .data import DataSpec


def copy_model(model: ir.Model) -> ir.Model:
    """An independent copy of the graph (rewrites work in place). Weight tensors are shared: edgecc's rewrites
    never change a tensor, they give nodes new initializers."""
    return model.clone()


def check_output_path(output: str | os.PathLike[str], source: str) -> Path:
    out = Path(output)
    if out.suffix.lower() != ".onnx":
        raise BadInputError(f"-o {out}: the output must be an .onnx file")
    if out.is_dir():
        raise BadInputError(f"-o {out}: is a directory")
    if not source.startswith("zoo:") and Path(source).resolve() == out.resolve():
        raise BadInputError(f"-o {out}: is the input model; write to another file so the original is kept")
    return out


def write_model(model: ir.Model, out: Path) -> Path:
    """Save into a staging directory beside ``out``, then move into place, so a failure never leaves half a file
    (external data, for models past 1 GiB, keeps the name the model refers to)."""
    import shutil
    import tempfile

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".edgecc-", dir=out.parent) as tmp:
            staged = save_model(model, Path(tmp) / out.name)
            for f in Path(tmp).iterdir():
                if f != staged:
                    shutil.move(str(f), out.parent / f.name)
            staged.replace(out)
    except OSError as e:
        raise BadInputError(f"{out}: cannot write: {e.strerror}") from None
    return out


def _feeds(inputs: str | None, prepared: PreparedModel):
    if inputs is None:
        return None
    from .profiling.inputs import load_inputs

    return load_inputs(inputs, prepared.inputs)


@dataclass
class OptimizeOutcome:
    source: str
    output: str | None
    optimize: object  # passes.OptimizeResult
    equivalence: list[Equivalence] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"model": self.source, "output": self.output, **self.optimize.to_json(),
                "verification": [e.to_json() for e in self.equivalence]}


def optimize(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    *,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    backend: str | None = None,
    explain: bool = False,
    inputs: str | None = None,
    use_onnxsim: bool = True,
) -> OptimizeOutcome:
    """Optimize ``model`` and write it to ``output`` (None: do not write).

    Verified against the original in onnxruntime on seeded random inputs and, when ``inputs`` (.npz)
    is given, on those too; a difference in interface or values raises VerificationError.
    """
    from .graph.passes import optimize_model
    from .graph.rewrite import check_backend

    if backend is not None:
        check_backend(backend)
    out = check_output_path(output, str(model)) if output is not None else None
    prepared = prepare_model(model, input_shapes)
    feeds = _feeds(inputs, prepared)
    original = copy_model(prepared.model)
    result = optimize_model(prepared.model, backend=backend, explain=explain, use_onnxsim=use_onnxsim)
    checks = [check_equivalent(original, result.model)]
    if feeds is not None:
        checks.append(check_equivalent(original, result.model, feeds))
    for eq in checks:
        if not eq.ok:
            raise VerificationError(f"{prepared.source}: the optimized model differs from the original: {eq.describe()}")
    if out is not None:
        write_model(result.model, out)
    return OptimizeOutcome(prepared.source, str(out) if out else None, result, checks)


def model_stats(model: ir.Model) -> dict[str, int]:
    a = analyze(model)
    return {"nodes": a.nodes, "params": a.params, "flops": a.flops}


@dataclass
class PruneOutcome:
    """What ``prune`` did: the plan (for a pruning in steps, the one-shot plan whose channel counts it reached),
    model stats, the output difference from the original on seeded random inputs, ``how`` the layers reading
    removed channels were corrected ("least-squares recovery, N step(s)", "mean-compensated" or "none"), each
    recovery step's per-layer figures and the fine-tuning's (None when not done)."""

    source: str
    output: str | None
    plan: object  # prune.PruningPlan
    before: dict[str, int]
    after: dict[str, int]
    equivalence: Equivalence | None
    how: str = "none"
    recovery: list[dict[str, object]] | None = None
    finetune: dict[str, object] | None = None
    allocation: object | None = None  # prune.allocate.Allocation; None: uniform

    def to_json(self) -> dict[str, object]:
        return {"model": self.source, "output": self.output, "plan": self.plan.to_json(), "before": self.before,
                "after": self.after, "output_error": None if self.equivalence is None else self.equivalence.to_json(),
                "how": self.how, "recovery": self.recovery, "finetune": self.finetune,
                "allocation": self.allocation.to_json() if self.allocation is not None else {"method": "uniform"}}


def _check_prune_options(ratio, zero_channels: bool, calibration: DataSpec | None, recover: bool, steps: int,
                         finetune_s: float | None, dry_run: bool, allocation: str = "auto") -> None:
    if ratio is not None and zero_channels:
        raise BadInputError("give --ratio or --zero-channels, not both")
    if ratio is None and not zero_channels:
        raise BadInputError("give --ratio R (0 < R < 1) or --zero-channels")
    if calibration is not None and calibration.is_random:
        raise BadInputError("pruning measures channels on real samples: give --calibration a directory of images or an .npz, not random")
    if steps < 1:
        raise BadInputError(f"--steps must be at least 1, got {steps}")
    if steps > 1 and not recover:
        raise BadInputError("--steps prunes in steps with least-squares recovery after each; it cannot go with --no-recover")
    if steps > 1 and (calibration is None or ratio is None):
        raise BadInputError("--steps needs --ratio and --calibration: each step re-fits the next layers on those samples")
    if allocation not in ("auto", *ALLOCATIONS):
        raise BadInputError(f"unknown --allocation '{allocation}'; known: auto, {', '.join(ALLOCATIONS)}")
    if allocation == "sensitivity" and (calibration is None or ratio is None or not recover):
        raise BadInputError("--allocation sensitivity measures each group's cut on the recovered model: it needs --ratio "
                            "and --calibration, without --no-recover")
    if finetune_s is None:
        return
    if calibration is None or ratio is None:
        raise BadInputError("--finetune needs --ratio and --calibration: the pruned model is trained on those samples")
    if finetune_s <= 0:
        raise BadInputError(f"--finetune takes a time budget in seconds > 0, got {finetune_s:g}")
    if dry_run:
        raise BadInputError("--finetune trains the model that is written; it cannot go with --dry-run")
    from .graph.finetune.bridge import import_onnx2torch, import_torch

    import_torch()  # MissingExtra now, not after pruning
    import_onnx2torch()


def prune(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    *,
    ratio: float | None = None,
    zero_channels: bool = False,
    criterion: str = "auto",
    round_to: int = 1,
    exclude: list[str] | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    dry_run: bool = False,
    calibration: DataSpec | None = None,
    recover: bool = True,
    steps: int = 1,
    finetune_s: float | None = None,
    finetune_data: DataSpec | None = None,
    allocation: str = "auto",
    progress: Callable[[int, int | None, float, float], None] | None = None,
) -> PruneOutcome:
    """Remove channels: the least important ``ratio`` of each coupled group, or (``zero_channels``) exactly
    those whose weights are all zero. The zero-channel result must equal the original within 1e-5
    (VerificationError otherwise); a ratio result's difference from the original is reported.

    With ``calibration`` (real samples), channels are ranked by what removing them moves the next layers
    (criterion "activation", the default then) and the layers that read removed channels are re-fitted by least
    squares to the original's outputs on those samples (edgecc.graph.prune.recover), in ``steps`` steps;
    ``recover=False`` folds the removed channels' means into their biases instead (edgecc.graph.prune.compensate).
    Without it the default criterion is l1 and nothing is folded. ``finetune_s``: then train the pruned model for
    that many seconds to reproduce the original's outputs on ``finetune_data`` (default: ``calibration``; needs
    the train extra), ``progress(step, total, loss, seconds)`` after each step; the trained model is written."""
    from .data import load_dataset
    from .graph.equivalence import EXACT_TOLERANCE
    from .graph.passes import fold_shape_computations
    from .graph.prune import check_exclude
    from .graph.prune.iterative import prune_model

    _check_prune_options(ratio, zero_channels, calibration, recover, steps, finetune_s, dry_run, allocation)
    out = check_output_path(output, str(model)) if output is not None and not dry_run else None
    prepared = prepare_model(model, input_shapes)
    excluded = check_exclude(prepared.model, exclude)
    original = copy_model(prepared.model)
    fold_shape_computations(prepared.model)
    # counted after folding: FLOPs inside an If whose condition folds are not counted before it does
    before = model_stats(prepared.model)
    feeds = load_dataset(calibration, prepared.inputs).batches if calibration is not None and ratio is not None else None
    pruned, plan, recovered = prune_model(prepared.model, ratio, feeds, criterion=criterion, round_to=round_to,
                                          exclude=excluded, zero_channels=zero_channels, recover=recover, steps=steps,
                                          allocation=allocation)
    if recovered is not None:
        how = f"least-squares recovery, {steps} step{'s' if steps > 1 else ''}"
        recovery, chosen = [st.to_json() for st in recovered.steps], recovered.allocation
    else:
        how, recovery, chosen = ("mean-compensated" if feeds is not None else "none"), None, None
    finetune = None
    if finetune_s is not None:
        from .graph.finetune import finetune_distill

        samples = load_dataset(finetune_data or calibration, prepared.inputs).batches
        tuned = finetune_distill(original, pruned, samples, time_budget_s=finetune_s, progress=progress)
        pruned, finetune = tuned.model, tuned.to_json()
    after = model_stats(pruned)
    eq = check_equivalent(original, pruned, tolerance=EXACT_TOLERANCE)
    if eq.interface_changes:
        raise VerificationError(f"{prepared.source}: pruning changed the model's interface: {eq.describe()} (a bug)")
    if zero_channels and not eq.ok:
        raise VerificationError(f"{prepared.source}: removing all-zero channels changed the outputs: {eq.describe()}")
    if out is not None:
        write_model(pruned, out)
    return PruneOutcome(prepared.source, str(out) if out else None, plan, before, after, eq, how, recovery, finetune,
                        chosen)


@dataclass
class RewriteOutcome:
    """The result of a rewrite such as sparsify or low-rank: what was changed, model stats before/after, the output error."""

    source: str
    output: str | None
    result: object  # the rewrite's own result (per-layer details)
    before: dict[str, int]
    after: dict[str, int]
    equivalence: Equivalence

    def to_json(self) -> dict[str, object]:
        return {"model": self.source, "output": self.output, **self.result.to_json(), "before": self.before,
                "after": self.after, "output_error": self.equivalence.to_json()}


def rewrite(model, output, input_shapes, apply) -> RewriteOutcome:
    """Load ``model``, rewrite it with ``apply(ir_model) -> result`` (sparsify, low-rank...), drop what the rewrite
    left unused, check the interface is unchanged, and write it to ``output`` (None: do not write)."""
    from .graph.equivalence import EXACT_TOLERANCE
    from .graph.io import infer_shapes

    out = check_output_path(output, str(model)) if output is not None else None
    prepared = prepare_model(model, input_shapes)
    original = copy_model(prepared.model)
    result = apply(prepared.model)
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    RemoveUnusedNodesPass()(prepared.model)  # the replaced weights
    infer_shapes(prepared.model)
    eq = check_equivalent(original, prepared.model, tolerance=EXACT_TOLERANCE)
    if eq.interface_changes:
        raise VerificationError(f"{prepared.source}: the rewrite changed the model's interface: {eq.describe()} (a bug)")
    if out is not None:
        write_model(prepared.model, out)
    return RewriteOutcome(prepared.source, str(out) if out else None, result, model_stats(original),
                          model_stats(prepared.model), eq)
