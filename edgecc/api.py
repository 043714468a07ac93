"""The public entry points: compile(), profile(), compare(), tune(), inspect(), load_artifact(), and the graph
rewrites (optimize(), prune(), sparsify(), lowrank()), quantize() and evaluate().

A thin facade: the CLI is a thin layer over these, and these over the packages that do the work:
edgecc.pipeline (compile and profile one artifact), edgecc.compare (the comparator), edgecc.graph (the IR
transforms and the graph-step registry) and edgecc.transform (load, rewrite, verify, save).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .artifact import Artifact, load_artifact
from .backends import get_backend, registry
from .compare import CompareRequest, input_shapes_arg, resolve_target, run_compare
from .compare.request import ShapeArg
from .data import DataSpec, load_dataset
from .errors import BadInputError, EdgeccError
from .evaluation import EvalResult
from .graph.analysis import ModelAnalysis, analyze
from .graph.io import PreparedModel, prepare_model, save_model
from .graph.quantize import QuantizeResult, QuantizeSettings, calibration_spec, check_settings
from .graph.steps import GraphRecipe, apply_recipe
from .pipeline import build_artifact, check_request
from .profiling.timing import ProfileSettings
from .report.schema import CompareReport, ResultRow
from .targets import Target

__all__ = ["compile", "profile", "compare", "run_compare", "inspect", "load_artifact", "resolve_target", "ProfileSettings",
           "CompareRequest", "GraphRecipe", "quantize", "evaluate", "optimize", "prune", "sparsify", "lowrank"]


def compile(
    model: str | os.PathLike[str],
    target: str | Target,
    out_dir: str | os.PathLike[str],
    *,
    backend: str | None = None,
    precision: str = "fp32",
    input_shapes: ShapeArg = None,
    options: dict[str, object] | None = None,
    targets_file: str | os.PathLike[str] | None = None,
    calibration: DataSpec | str | None = None,
    quantize: QuantizeSettings | dict | None = None,
    graph: GraphRecipe | None = None,
    progress: Callable[[str], None] | None = None,
    **steps: object,
) -> Artifact:
    """Compile ``model`` (a path or ``zoo:NAME``) for ``target`` into the artifact directory ``out_dir``.

    ``backend`` defaults to the target's preferred backend. Nothing is written at ``out_dir`` unless
    the compile succeeds. ``precision="int8"`` needs ``calibration`` (a directory of images, an .npz/.npy,
    or ``random`` for latency-only work; see edgecc.data) and takes ``quantize`` settings.
    Graph steps (edgecc.graph.steps: ``prune=0.3``, ``lowrank=0.9``, ``optimize=True``, or a ``graph`` recipe)
    rewrite the graph first; they are recorded in the manifest's passes and notes. Steps that measure (pruning)
    use ``calibration`` when it holds real samples, at any precision; fine-tuning (``finetune=SECONDS``) trains on
    them and needs them. ``progress(text)`` is told what a long step is doing, then that the backend compiles.
    """
    cal = calibration_spec(calibration, check_settings(quantize)) if calibration is not None else None
    recipe = GraphRecipe(**((graph.values() if graph is not None else {}) | steps))
    recipe.check()
    tgt = resolve_target(target, targets_file)
    be = get_backend(backend or tgt.preferred_backend)
    check_request(be, tgt, precision)
    prepared = prepare_model(model, input_shapes_arg(input_shapes))
    done = apply_recipe(prepared, recipe, cal, progress)
    if progress is not None:
        progress(f"compiling with {be.name}")
    return build_artifact(
        prepared, tgt, be, precision, options, Path(out_dir),
        calibration=calibration if precision == "int8" else None, quantize=quantize,
        graph_passes=done.passes, graph_notes=done.notes,
    )


def profile(
    artifact_dir: str | os.PathLike[str],
    settings: ProfileSettings = ProfileSettings(),
    *,
    inputs: str | None = None,
    isolate: bool = True,
    timeout_s: float | None = 1800,
    memory_limit: int | None = None,
    device: str | None = None,
) -> ResultRow:
    """Run a compiled artifact here, again without recompiling: latency, per-layer times, and outputs
    checked against the reference stored at compile time. With ``inputs`` (.npz), those are used and
    the row is not verified. ``isolate`` runs it in a child process, so a crash becomes a failed row;
    it is stopped after ``timeout_s`` or past ``memory_limit`` bytes (default: 75% of this machine's memory).
    ``device`` runs it elsewhere: ssh://user@host[:port] (edgecc installed there) or rpc://HOST:PORT[/KEY]
    (TVM artifacts on a TVM RPC server or tracker); edgecc.remote.run decides how."""
    from .remote.device import parse_device
    from .remote.run import PROFILE_DEVICES, profile_on

    return profile_on(
        parse_device(device, PROFILE_DEVICES), artifact_dir, settings, inputs=inputs, isolate=isolate,
        timeout_s=timeout_s, memory_limit=memory_limit,
    )


def compare(
    model: str | os.PathLike[str],
    target: str | Target,
    *,
    targets_file: str | os.PathLike[str] | None = None,
    on_row=None,  # noqa: ANN001 - Callable[[ResultRow, int, int], None]
    progress: Callable[[str], None] | None = None,
    **request: object,
) -> CompareReport:
    """Compile and profile ``model`` with every backend x precision on ``target``, each in its own
    process, against the onnxruntime FP32 baseline measured in the same run (edgecc.compare).

    The keyword arguments are the fields of :class:`edgecc.compare.CompareRequest` (``backends``,
    ``precisions``, ``input_shapes``, ``options``, ``vary``, ``settings``, ``timeout_s``, ``memory_limit``,
    ``artifacts_dir``, ``calibration``, ``quantize``, ``eval_data``, ``max_accuracy_drop``,
    ``eval_against_original``, ``deadline``) and graph steps by name (``prune=0.3``, ``optimize=True``).
    INT8 rows are calibrated on ``calibration``; with ``eval_data`` every row is also run over that data set
    (top-1, agreement or PSNR against onnxruntime FP32, and the drop from the baseline); rows losing more
    than ``max_accuracy_drop`` points are flagged. ``on_row(row, i, n)`` is called as each row finishes;
    ``progress(text)`` is told what a long graph step (fine-tuning) is doing before the rows start.
    """
    tgt = resolve_target(target, targets_file, measure_host_peak=True)
    return run_compare(CompareRequest.build(model, tgt, **request), on_row, progress)


@dataclass
class BackendSupport:
    backend: str
    available: bool
    reason: str
    unsupported_ops: list[str]
    #: set when unsupported_ops is an estimate (the backend is absent): says what it is estimated from
    estimate: str | None = None


def inspect(
    model: str | os.PathLike[str], *, input_shapes: ShapeArg = None, backends: list[str] | None = None
) -> tuple[PreparedModel, ModelAnalysis, list[BackendSupport]]:
    """Validate ``model`` and describe it: inputs/outputs, opsets, op histogram, params, FLOPs, and
    for each installed backend (or those in ``backends``) which ops it cannot run. A backend that is
    absent but has a static capability table gives its estimate, labelled as one."""
    for n in backends or []:
        get_backend(n)  # an unknown name fails here with the known ones
    prepared = prepare_model(model, input_shapes_arg(input_shapes))
    analysis = analyze(prepared.model)
    support = []
    for name in backends or registry.names():
        be = get_backend(name)
        a = be.availability()
        if not a.available:
            ops, label = be.estimated_unsupported_ops(prepared)
            support.append(BackendSupport(name, False, f"{a.reason}; install: {be.install_command}", ops, label))
            continue
        try:
            support.append(BackendSupport(name, True, "", be.unsupported_ops(prepared)))
        except EdgeccError as e:
            support.append(BackendSupport(name, False, str(e), []))
    return prepared, analysis, support


def quantize(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str],
    calibration: DataSpec | str,
    settings: QuantizeSettings | dict | None = None,
    *,
    input_shapes: ShapeArg = None,
    eval_data: DataSpec | str | None = None, max_accuracy_drop: float | None = None, progress=None,
) -> QuantizeResult:
    """Quantise ``model`` to a QDQ INT8 ONNX file at ``output`` (written only on success), calibrated on
    ``calibration`` (a directory of images, an .npz/.npy, or ``random``: see edgecc.data). With ``eval_data`` and
    ``max_accuracy_drop`` (points), the fewest layers that keep the drop within it stay float (``result.mixed``;
    ``progress(what, done, total)`` follows that search)."""
    from .graph.quantize import quantize_prepared

    out = Path(output)
    if out.suffix != ".onnx":
        raise BadInputError(f"{out}: the quantised model is written as ONNX: give a path ending in .onnx")
    prepared = prepare_model(model, input_shapes_arg(input_shapes))
    result = quantize_prepared(prepared, calibration, settings, eval_data=eval_data, max_drop=max_accuracy_drop,
                               progress=progress)
    from .transform import write_model

    write_model(result.model, out)
    return result


def evaluate(
    model_or_artifact: str | os.PathLike[str],
    data: DataSpec | str,
    *,
    metrics: tuple[str, ...] | None = None,
    reference: str | os.PathLike[str] | None = None,
    input_shapes: ShapeArg = None,
) -> EvalResult:
    """Accuracy of an artifact directory (run by its backend here) or an ONNX model (run by onnxruntime)
    on ``data``: top-1 against its labels, top-1 agreement / PSNR against the FP32 ``reference`` model.

    For an artifact, ``reference`` defaults to the model it was compiled from when that file is still
    there unchanged (same sha256)."""
    from .artifact import MANIFEST
    from .evaluation import compute_metrics, evaluate_artifact, onnx_outputs

    spec = data if isinstance(data, DataSpec) else DataSpec(str(data))
    if spec.is_random:
        raise BadInputError("evaluation needs real data (an .npz with inputs and labels, or images), not random")
    path = Path(model_or_artifact)
    artifact = load_artifact(path) if path.is_dir() and (path / MANIFEST).is_file() else None
    if artifact is not None:
        inputs = artifact.inputs
        shapes = {s.name: s.shape for s in inputs}
    else:
        prepared = prepare_model(model_or_artifact, input_shapes_arg(input_shapes))
        inputs, shapes = prepared.inputs, {s.name: s.shape for s in prepared.inputs}
    dataset = load_dataset(spec, inputs, need_labels=metrics is not None and "top1" in metrics)
    ref_outputs = None
    with tempfile.TemporaryDirectory(prefix="edgecc-eval-") as tmp:
        ref_model = _reference_model(artifact, reference, shapes)
        if ref_model is not None:
            ref_outputs = onnx_outputs(str(save_model(ref_model.model, Path(tmp) / "ref.onnx")), dataset)
        if artifact is not None:
            return evaluate_artifact(str(artifact.path), dataset, ref_outputs, metrics)
        outputs = onnx_outputs(str(save_model(prepared.model, Path(tmp) / "model.onnx")), dataset)
    return compute_metrics(outputs, dataset.labels, ref_outputs, metrics)


def _reference_model(artifact: Artifact | None, reference: str | os.PathLike[str] | None,
                     shapes: dict[str, tuple[int, ...]]) -> PreparedModel | None:
    if reference is not None:
        return prepare_model(reference, shapes)
    if artifact is None:
        return None
    source = artifact.manifest.model.source
    try:
        found = prepare_model(source, shapes)
    except EdgeccError:
        return None  # the source model moved or changed: no default reference
    return found if found.sha256 == artifact.manifest.model.sha256 else None


# -- graph rewrites (edgecc.transform loads, rewrites, verifies and saves) ----------------------------------------


def _pack_backend(target: str | Target | None, backend: str | None, targets_file) -> str | None:
    if backend is not None or target is None:
        return backend
    return resolve_target(target, targets_file).preferred_backend


def optimize(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    *,
    input_shapes: ShapeArg = None,
    target: str | Target | None = None,
    backend: str | None = None,
    explain: bool = False,
    inputs: str | None = None,
    targets_file: str | os.PathLike[str] | None = None,
):
    """Optimize ``model``'s graph and write it to ``output``; returns what each pass did and the verification.

    The common fusion rules apply; ``backend`` (or ``target``'s preferred backend) adds that backend's pack.
    """
    from . import transform

    return transform.optimize(
        model, output, input_shapes=input_shapes_arg(input_shapes), backend=_pack_backend(target, backend, targets_file),
        explain=explain, inputs=inputs,
    )


def prune(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    *,
    ratio: float | None = None,
    zero_channels: bool = False,
    criterion: str = "auto",
    round_to: int = 1,
    exclude: list[str] | None = None,
    input_shapes: ShapeArg = None,
    dry_run: bool = False,
    calibration: DataSpec | str | None = None,
    recover: bool = True, steps: int = 1, finetune_s: float | None = None, progress: Callable | None = None,
    allocation: str = "auto",
):
    """Structured channel pruning made physical: ``ratio`` of each channel group by ``criterion`` ("auto": activation
    with ``calibration``, else l1), or ``zero_channels`` (exact). With ``calibration`` (real samples, the first 100
    measure) the next layers are re-fitted by least squares in ``steps`` (``recover=False``: removed means folded
    into biases), then ``finetune_s`` seconds of distillation on all the samples. ``allocation``: "uniform" cuts every
    group by ``ratio``, "sensitivity" chooses each group's count by measured error at the same FLOPs, "auto" the
    default for the data given. See edgecc.transform.prune."""
    from . import transform

    full = (calibration if isinstance(calibration, DataSpec) else DataSpec(str(calibration))) if calibration is not None else None
    return transform.prune(
        model, output, ratio=ratio, zero_channels=zero_channels, criterion=criterion, round_to=round_to,
        exclude=exclude, input_shapes=input_shapes_arg(input_shapes), dry_run=dry_run, recover=recover, steps=steps,
        calibration=calibration_spec(full, check_settings(None)) if full is not None else None,
        finetune_s=finetune_s, finetune_data=full, progress=progress, allocation=allocation)


def sparsify(
    model: str | os.PathLike[str], output: str | os.PathLike[str] | None, *, pattern: str = "unstructured",
    ratio: float = 0.5, input_shapes: ShapeArg = None,
):
    """Zero weights: ``pattern`` "unstructured" (the ``ratio`` smallest per layer) or "2:4" (ratio 0.5), recorded in
    the model metadata (``edgecc.sparsity``) for backends with sparse kernels. Reports the output error."""
    from . import transform

    from .graph.prune.sparsity import sparsify_model

    return transform.rewrite(model, output, input_shapes_arg(input_shapes), lambda m: sparsify_model(m, pattern, ratio))


def lowrank(
    model: str | os.PathLike[str], output: str | os.PathLike[str] | None, *, energy: float = 0.95,
    input_shapes: ShapeArg = None,
):
    """SVD factorisation of Gemm/MatMul weights and 1x1 Convs keeping ``energy`` of the spectrum, only where
    FLOPs drop. Reports per-layer ranks and errors and the output error."""
    from . import transform

    from .graph.lowrank import factorize_model

    return transform.rewrite(model, output, input_shapes_arg(input_shapes), lambda m: factorize_model(m, energy))


def tune(
    model: str | os.PathLike[str],
    target: str | Target,
    *,
    trials: int = 256,
    time_budget_s: float | None = None,
    db: str | os.PathLike[str] | None = None,
    device: str | None = None,
    input_shapes: ShapeArg = None,
    targets_file: str | os.PathLike[str] | None = None,
    backend: str = "tvm",
    on_progress: Callable[[object], None] | None = None,
):
    """Tune ``model``'s kernels for ``target`` with the backend's tuner (TVM: MetaSchedule) into its lasting
    database under ``db`` (default: the user cache), then ``compile(..., options={"tuned": True})`` applies it.

    At most ``trials`` measured candidates and ``time_budget_s`` seconds; tasks the database holds cost
    nothing. Candidates are measured here, or with ``device`` rpc://TRACKER:PORT/KEY on the boards behind a
    TVM RPC tracker. ``on_progress`` receives the tuner's events (TVM: TunePlanned, then a TuneEvent per
    measured batch). Returns the tuner's report (``to_json()`` is ``edgecc tune --json``'s output).
    """
    from .backends.base import TuneRequest
    from .errors import UnsupportedError
    from .remote.device import RpcDevice, parse_device
    from .remote.run import TUNE_DEVICES

    tgt = resolve_target(target, targets_file)
    be = get_backend(backend)
    why = be.target_support(tgt)
    if why is not None:
        raise BadInputError(why)
    be.require()
    tuner = be.tuner()
    if tuner is None:
        raise UnsupportedError(f"backend {be.name} does not tune; backends that tune: "
                               + ", ".join(n for n in registry.names() if get_backend(n).tuner() is not None))
    where = parse_device(device, TUNE_DEVICES)
    prepared = prepare_model(model, input_shapes_arg(input_shapes))
    request = TuneRequest(trials, time_budget_s, db, where if isinstance(where, RpcDevice) else None, on_progress)
    return tuner.tune(prepared, tgt, request)
