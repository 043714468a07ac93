"""What ``edgecc optimize / prune / sparsify / lowrank`` do, behind edgecc.api: load, rewrite, verify, save.

Each returns a result with a ``to_json()`` for ``--report``; nothing is written at the output path
unless the rewrite succeeded and (where the rewrite must not change the function) verified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import onnx_ir as ir

from ..errors import BadInputError, VerificationError
from .analysis import analyze
from .equivalence import Equivalence, check_equivalent
from .io import PreparedModel, prepare_model, save_model

if TYPE_CHECKING:
    from ..data import DataSpec


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
    from ..profiling.inputs import load_inputs

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
    from .passes import optimize_model
    from .rewrite import check_backend

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
    source: str
    output: str | None
    plan: object  # prune.PruningPlan
    before: dict[str, int]
    after: dict[str, int]
    equivalence: Equivalence | None

    def to_json(self) -> dict[str, object]:
        return {"model": self.source, "output": self.output, "plan": self.plan.to_json(), "before": self.before,
                "after": self.after, "output_error": None if self.equivalence is None else self.equivalence.to_json()}


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
) -> PruneOutcome:
    """Remove channels: the least important ``ratio`` of each coupled group, or (``zero_channels``) exactly
    those whose weights are all zero. The zero-channel result must equal the original within 1e-5
    (VerificationError otherwise); a ratio result's difference from the original is reported.

    With ``calibration`` (real samples), channels are ranked by what removing them moves the next layers
    (criterion "activation", the default then) and their mean contribution is folded into those layers'
    biases (edgecc.graph.prune.compensate); without it the default criterion is l1 and nothing is folded."""
    from .equivalence import EXACT_TOLERANCE
    from .passes import fold_shape_computations
    from ..data import load_dataset
    from .prune import build_dependency_graph, check_exclude, materialise, plan_pruning
    from .prune.compensate import measure

    if ratio is not None and zero_channels:
        raise BadInputError("give --ratio or --zero-channels, not both")
    if ratio is None and not zero_channels:
        raise BadInputError("give --ratio R (0 < R < 1) or --zero-channels")
    out = check_output_path(output, str(model)) if output is not None and not dry_run else None
    prepared = prepare_model(model, input_shapes)
    excluded = check_exclude(prepared.model, exclude)
    original = copy_model(prepared.model)
    fold_shape_computations(prepared.model)
    # counted after folding: FLOPs inside an If whose condition folds are not counted before it does
    before = model_stats(prepared.model)
    graph = build_dependency_graph(prepared.model)
    if calibration is not None and calibration.is_random:
        raise BadInputError("pruning measures channels on real samples: give --calibration a directory of images or an .npz, not random")
    means = measure(graph, load_dataset(calibration, prepared.inputs).batches) if calibration is not None and ratio is not None else None
    if criterion == "auto":
        criterion = "activation" if means is not None else "l1"
    plan = plan_pruning(graph, ratio=ratio, criterion=criterion, round_to=round_to, exclude=excluded, zero_channels=zero_channels)
    pruned = materialise(plan, means)
    after = model_stats(pruned)
    eq = check_equivalent(original, pruned, tolerance=EXACT_TOLERANCE)
    if eq.interface_changes:
        raise VerificationError(f"{prepared.source}: pruning changed the model's interface: {eq.describe()} (a bug)")
    if zero_channels and not eq.ok:
        raise VerificationError(f"{prepared.source}: removing all-zero channels changed the outputs: {eq.describe()}")
    if out is not None:
        write_model(pruned, out)
    return PruneOutcome(prepared.source, str(out) if out else None, plan, before, after, eq)


@dataclass
class RewriteOutcome:
    """The result of sparsify or lowrank: what was changed, model stats before/after, the output error."""

    source: str
    output: str | None
    result: object  # SparsityResult or LowRankResult
    before: dict[str, int]
    after: dict[str, int]
    equivalence: Equivalence

    def to_json(self) -> dict[str, object]:
        return {"model": self.source, "output": self.output, **self.result.to_json(), "before": self.before,
                "after": self.after, "output_error": self.equivalence.to_json()}


def _rewrite(model, output, input_shapes, apply) -> RewriteOutcome:
    from .equivalence import EXACT_TOLERANCE
    from .io import infer_shapes

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


def sparsify(model, output, *, pattern: str, ratio: float, input_shapes=None) -> RewriteOutcome:
    """Zero weights by magnitude (unstructured) or 2:4 along the reduction axis; recorded in the metadata."""
    from .prune.sparsity import sparsify_model

    return _rewrite(model, output, input_shapes, lambda m: sparsify_model(m, pattern, ratio))


def lowrank(model, output, *, energy: float, input_shapes=None) -> RewriteOutcome:
    """Truncated-SVD factorisation of Gemm/MatMul weights and 1x1 Convs where it lowers FLOPs."""
    from .lowrank import factorize_model

    return _rewrite(model, output, input_shapes, lambda m: factorize_model(m, energy))


#: --prune in compile/compare/search keeps channel counts of groups with 64+ channels a multiple of 8: CPU
#: kernels work on blocks of 8/16 channels, and odd counts fall off their fast paths (EfficientNet-Lite0 pruned by
#: 0.1 ran in 13.2 ms in onnxruntime with exact counts, 7.1 ms rounded to 8, 8.0 ms unpruned). Small groups keep
#: their exact ratio. `edgecc prune --round-to` sets it by hand.
STEP_ROUND_TO, STEP_ROUND_FROM = 8, 64


@dataclass(frozen=True)
class GraphSteps:
    """Graph rewrites run as steps of compile/compare, in this order: prune, low-rank, optimize."""

    optimize: bool = False
    prune: float | None = None
    lowrank: float | None = None
    #: real samples (the run's calibration data) that pruning is measured on; None or random: l1, nothing folded
    data: DataSpec | None = None

    def __bool__(self) -> bool:
        return self.optimize or self.prune is not None or self.lowrank is not None

    def check(self) -> None:
        """Reject bad values before any model is loaded."""
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise BadInputError(f"--prune must be between 0 and 1 (exclusive), got {self.prune:g}")
        if self.lowrank is not None and not 0.0 < self.lowrank <= 1.0:
            raise BadInputError(f"--lowrank must be in (0, 1], got {self.lowrank:g}")


def apply_steps(prepared: PreparedModel, steps: GraphSteps) -> tuple[list[str], list[str]]:
    """Rewrite ``prepared.model`` in place; returns (pass names for the manifest, notes with FLOPs and the
    output difference from the original model)."""
    if not steps:
        return [], []
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    from .io import infer_shapes
    from .lowrank import factorize_model
    from .passes import fold_shape_computations, optimize_model
    from .prune import build_dependency_graph, materialise, plan_pruning

    steps.check()
    original = copy_model(prepared.model)
    before = model_stats(original)
    passes: list[str] = []
    if steps.prune is not None:
        from ..data import load_dataset
        from .prune.compensate import measure

        fold_shape_computations(prepared.model)
        graph = build_dependency_graph(prepared.model)
        measured = steps.data is not None and not steps.data.is_random
        means = measure(graph, load_dataset(steps.data, prepared.inputs).batches) if measured else None
        plan = plan_pruning(graph, ratio=steps.prune, criterion="activation" if measured else "l1",
                            round_to=STEP_ROUND_TO, round_from=STEP_ROUND_FROM)
        materialise(plan, means)
        how = ("criterion=activation,mean-compensated" if measured else "criterion=l1") + f",round-to={STEP_ROUND_TO}"
        passes.append(f"prune(ratio={steps.prune:g},{how},removed={plan.removed_channels})")
    if steps.lowrank is not None:
        result = factorize_model(prepared.model, steps.lowrank)
        RemoveUnusedNodesPass()(prepared.model)
        infer_shapes(prepared.model)
        passes.append(f"lowrank(energy={steps.lowrank:g},layers={len(result.layers)})")
    if steps.optimize:
        result = optimize_model(prepared.model)
        passes.append(f"optimize(nodes={result.nodes_before}->{result.nodes_after})")
    after = model_stats(prepared.model)
    eq = check_equivalent(original, prepared.model)
    if eq.interface_changes:
        raise VerificationError(f"{prepared.source}: graph steps changed the model's interface: {eq.describe()} (a bug)")
    e = eq.error
    notes = [f"graph steps {', '.join(passes)}: FLOPs {before['flops']} -> {after['flops']}, params {before['params']} -> "
             f"{after['params']}; outputs vs the original model: max abs error {e.max_abs_error:.3g}, cosine {e.cosine:.6f}"]
    return passes, notes
