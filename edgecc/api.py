"""The public entry points: compile(), profile(), compare(), inspect(), load_artifact().

The CLI is a thin layer over these; anything the CLI can do, these do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .artifact import Artifact, load_artifact
from .backends import PRECISIONS, get_backend, registry
from .data import RANDOM_WARNING, DataSpec, load_dataset
from .errors import BackendUnavailable, BadInputError, EdgeccError, UnknownNameError
from .evaluation import EvalResult
from .graph.analysis import ModelAnalysis, analyze
from .graph.io import PreparedModel, parse_input_shapes, prepare_model, save_model
from .graph.quantize import QuantizeResult, QuantizeSettings, RandomCalibrationWarning, calibration_spec, check_settings
from .isolation import Outcome, default_memory_limit, run_isolated
from .pipeline import build_artifact, check_request, profile_artifact, write_reference
from .profiling.inputs import load_inputs
from .report.schema import Baseline, CompareReport, ResultRow
from .targets import Target, load_registry

__all__ = ["compile", "profile", "compare", "inspect", "load_artifact", "resolve_target", "ProfileSettings", "quantize", "evaluate",
           "optimize", "prune", "sparsify", "lowrank"]

ShapeArg = dict[str, tuple[int, ...]] | list[str] | None


@dataclass(frozen=True)
class ProfileSettings:
    """How long to measure: ``warmup`` untimed runs, then at least ``runs`` runs and ``min_time_s`` seconds;
    ``layer_runs`` extra runs with per-layer profiling (0 turns it off)."""

    warmup: int = 10
    runs: int = 50
    min_time_s: float = 1.0
    layer_runs: int = 10

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.runs < 1 or self.min_time_s < 0 or self.layer_runs < 0:
            raise BadInputError("profile settings: warmup >= 0, runs >= 1, min time >= 0 and layer runs >= 0")


def resolve_target(
    target: str | Target, targets_file: str | os.PathLike[str] | None = None, *, measure_host_peak: bool = False
) -> Target:
    """The target called ``target``. With ``measure_host_peak``, ``host`` carries its measured GEMM
    peak (measured once per machine, then cached) instead of the estimate from its clock and ISA."""
    if not isinstance(target, str):
        return target
    if target == "host" and measure_host_peak:
        from .targets.host import measure_peak_again

        measure_peak_again()  # 1 s; keeps the best measurement so far
    return load_registry(targets_file).get(target)


def _shapes(input_shapes: ShapeArg) -> dict[str, tuple[int, ...]]:
    if input_shapes is None or isinstance(input_shapes, dict):
        return dict(input_shapes or {})
    return parse_input_shapes(input_shapes)


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
    prune: float | None = None,
    lowrank: float | None = None,
    optimize: bool = False,
) -> Artifact:
    """Compile ``model`` (a path or ``zoo:NAME``) for ``target`` into the artifact directory ``out_dir``.

    ``backend`` defaults to the target's preferred backend. Nothing is written at ``out_dir`` unless
    the compile succeeds. ``precision="int8"`` needs ``calibration`` (a directory of images, an .npz/.npy,
    or ``random`` for latency-only work; see edgecc.data) and takes ``quantize`` settings.
    ``prune`` (ratio), ``lowrank`` (energy) and ``optimize`` rewrite the graph first;
    they are recorded in the manifest's passes and notes. Pruning is measured on ``calibration`` when it
    holds real samples (at any precision): channels ranked by activation, their means folded into biases.
    """
    from .graph.commands import GraphSteps, apply_steps

    cal = calibration_spec(calibration, check_settings(quantize)) if calibration is not None else None
    steps = GraphSteps(optimize=optimize, prune=prune, lowrank=lowrank, data=cal)
    steps.check()
    tgt = resolve_target(target, targets_file)
    be = get_backend(backend or tgt.preferred_backend)
    check_request(be, tgt, precision)
    prepared = prepare_model(model, _shapes(input_shapes))
    passes, notes = apply_steps(prepared, steps)
    return build_artifact(
        prepared, tgt, be, precision, options, Path(out_dir),
        calibration=calibration if precision == "int8" else None, quantize=quantize,
        graph_passes=passes, graph_notes=notes,
    )


def _profile_job(path: str, settings: ProfileSettings, inputs: str | None, device: str | None = None) -> ResultRow:
    artifact = load_artifact(path)
    backend = get_backend(artifact.manifest.backend)
    feeds = load_inputs(inputs, artifact.inputs) if inputs else None
    return profile_artifact(
        artifact, backend, warmup=settings.warmup, runs=settings.runs, min_time_s=settings.min_time_s,
        layer_runs=settings.layer_runs, feeds=feeds, device=device,
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
    ``device`` runs it on a remote board instead (rpc://HOST:PORT or rpc://TRACKER:PORT/KEY, TVM artifacts)."""
    artifact = load_artifact(artifact_dir)  # checksums are checked here, before any work
    backend = get_backend(artifact.manifest.backend)
    backend.require()
    if device is not None and device != "local":
        from .remote.rpc import parse_device

        parse_device(device)  # a malformed address is the user's input error: report it before any work
    if not isolate:
        return _profile_job(str(artifact.path), settings, inputs, device)
    outcome = run_isolated(
        _profile_job, str(artifact.path), settings, inputs, device, timeout_s=timeout_s,
        memory_limit=memory_limit or default_memory_limit(),
    )
    if outcome.kind == "error" and outcome.exit_code in (2, 3):
        raise (BackendUnavailable if outcome.exit_code == 3 else BadInputError)(outcome.message)
    return _row_from_outcome(outcome, artifact.manifest.backend, artifact.manifest.precision)


def _row_from_outcome(outcome: Outcome, backend: str, precision: str) -> ResultRow:
    if outcome.ok:
        return outcome.value
    status = "unavailable" if outcome.error_type in ("BackendUnavailable", "UnsupportedError") else "failed"
    return ResultRow(backend=backend, precision=precision, status=status, error=outcome.message)


@dataclass(frozen=True)
class _RowJob:
    model_path: str
    source: str
    name: str
    sha256: str
    target: Target
    backend: str
    precision: str
    options: dict[str, object] | None
    out_dir: str
    reference: str
    settings: ProfileSettings
    # INT8 and accuracy: data travels as paths (DataSpec), read in the child.
    calibration: DataSpec | None = None
    quantize: dict[str, object] | None = None
    eval_data: DataSpec | None = None
    eval_reference: str | None = None
    graph_passes: tuple[str, ...] = ()
    graph_notes: tuple[str, ...] = ()


def _row_job(job: _RowJob) -> ResultRow:
    prepared = prepare_model(job.model_path)
    prepared = PreparedModel(prepared.model, job.source, job.name, job.sha256)
    backend = get_backend(job.backend)
    int8 = job.precision == "int8"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomCalibrationWarning)  # compare() warned once, in the parent
        artifact = build_artifact(
            prepared, job.target, backend, job.precision, job.options, Path(job.out_dir), reference=Path(job.reference),
            calibration=job.calibration if int8 else None, quantize=job.quantize if int8 else None,
            graph_passes=job.graph_passes, graph_notes=job.graph_notes,
        )
    s = job.settings
    row = profile_artifact(
        artifact, backend, warmup=s.warmup, runs=s.runs, min_time_s=s.min_time_s, layer_runs=s.layer_runs
    )
    if int8 and job.calibration is not None:
        row = row.model_copy(update={"calibration": job.calibration.describe()})
    if job.eval_data is not None:
        row = row.model_copy(update=_accuracy(str(artifact.path), job.eval_data, job.eval_reference, prepared))
    return row


def _accuracy(artifact_dir: str, data: DataSpec, reference_path: str | None, prepared: PreparedModel) -> dict[str, object]:
    import numpy as np

    from .evaluation import evaluate_artifact

    dataset = load_dataset(data, prepared.inputs)
    reference = None
    if reference_path is not None:
        with np.load(reference_path, allow_pickle=False) as ref:
            reference = ref["outputs"]
    res = evaluate_artifact(artifact_dir, dataset, reference)
    return {"accuracy": res.top1, "agreement": res.agreement, "eval_samples": res.samples,
            "psnr_db": res.to_json()["psnr_db"]}


def _plan_rows(
    target: Target, backends: list[str] | None, precisions: list[str] | None, calibrated: bool = False
) -> list[tuple[str, str, str | None]]:
    """(backend, precision, reason it cannot run or None) for every row; the baseline comes first."""
    if backends:
        for n in backends:
            get_backend(n)  # an unknown name fails here with the known ones
        names = backends
    else:  # the target's backends that this installation has
        names = [n for n in target.backends() if n in registry.names()]
    rows: list[tuple[str, str, str | None]] = [("onnxruntime", "fp32", None)]
    for name in names:
        be = get_backend(name)
        why = be.target_support(target)
        if why is not None:
            rows += [(name, p, why) for p in (precisions or ["fp32"])]
            continue
        avail = be.availability()
        can = be.precisions(target)
        with_data = be.calibrated_precisions(target)
        for p in precisions or list(can) + (list(with_data) if calibrated else []):
            if (name, p) == ("onnxruntime", "fp32"):
                continue
            if not avail.available:
                why = f"{avail.reason}; install it with: {be.install_command}"
            elif p not in can + with_data:
                why = f"backend {name} cannot run {p} on target {target.name}; it can: {', '.join(can + with_data)}"
            else:
                why = None
            rows.append((name, p, why))
    return rows


def _relevant(backend: str, precision: str, sets: list[tuple[dict[str, object] | None, dict[str, object] | None]]):
    """``sets`` for a row of ``precision``: varied options that do not apply to it (BackendOptions.applies_to)
    dropped, and the combinations that then coincide built once."""
    model = get_backend(backend).options_model
    out, seen = [], set()
    for opts, varied in sets:
        if varied is not None:
            dropped = {k for k in varied if not model.applies_to(k, precision)}
            varied = {k: v for k, v in varied.items() if k not in dropped}
            opts = {k: v for k, v in (opts or {}).items() if k not in dropped}
        key = repr(sorted((varied or {}).items()))
        if key not in seen:
            seen.add(key)
            out.append((opts, varied))
    return out


#: how rows the ``deadline`` of compare() stopped begin their error (not run / cut short)
BUDGET_ERRORS = ("not run: the time budget", "stopped: the time budget")


def option_sets(
    options: dict[str, dict[str, object]] | None, vary: dict[str, dict[str, list[object]]] | None
) -> dict[str, list[tuple[dict[str, object], dict[str, object] | None]]]:
    """backend -> [(options its rows are built with, the varied part or None)]: ``options[backend]``
    alone, or one entry per combination of ``vary[backend]``'s values over it (first values first).
    Every combination is validated by the backend's options model here, before anything runs."""
    import itertools

    out: dict[str, list[tuple[dict[str, object], dict[str, object] | None]]] = {}
    for backend, keys in (vary or {}).items():
        be = get_backend(backend)  # an unknown name fails here with the known ones
        if not keys or any(not values for values in keys.values()):
            raise BadInputError(f"--vary {backend}: give KEY=VALUE1,VALUE2,...")
        base = dict((options or {}).get(backend) or {})
        combos = []
        for values in itertools.product(*keys.values()):
            varied = dict(zip(keys, values))
            be.parse_options(base | varied)  # a bad key or value fails now, with the backend's message
            combos.append((base | varied, varied))
        out[backend] = combos
    return out


def compare(
    model: str | os.PathLike[str],
    target: str | Target,
    *,
    backends: list[str] | None = None,
    precisions: list[str] | None = None,
    input_shapes: ShapeArg = None,
    options: dict[str, dict[str, object]] | None = None,
    settings: ProfileSettings = ProfileSettings(),
    timeout_s: float | None = 1800,
    memory_limit: int | None = None,
    artifacts_dir: str | os.PathLike[str] | None = None,
    targets_file: str | os.PathLike[str] | None = None,
    on_row: Callable[[ResultRow, int, int], None] | None = None,
    calibration: DataSpec | str | None = None,
    quantize: QuantizeSettings | dict | None = None,
    eval_data: DataSpec | str | None = None,
    max_accuracy_drop: float | None = None,
    prune: float | None = None,
    lowrank: float | None = None,
    optimize: bool = False,
    eval_against_original: bool = False,
    vary: dict[str, dict[str, list[object]]] | None = None,
    deadline: float | None = None,
) -> CompareReport:
    """Compile and profile ``model`` with every backend x precision on ``target``, each in its own
    process, against the onnxruntime FP32 baseline measured in the same run.

    A row that crashes, hangs past ``timeout_s``, grows past ``memory_limit`` bytes (default: 75% of
    this machine's memory) or fails verification is reported with its cause;
    the others complete. ``options`` maps backend name -> that backend's options. ``on_row(row, i, n)``
    is called as each row finishes. Artifacts are kept under ``artifacts_dir`` when given.

    INT8 rows are calibrated on ``calibration`` (required when int8 is asked for; without it and
    without ``precisions`` no INT8 row is planned) with ``quantize`` settings. With ``eval_data`` every
    row is also run over that data set: top-1 accuracy (when it has labels), top-1 agreement (or PSNR
    for dense outputs) against onnxruntime FP32, and the drop from the baseline; rows losing more than
    ``max_accuracy_drop`` points are flagged ``within_accuracy_budget: false``.

    ``prune``/``lowrank``/``optimize`` rewrite the graph once before every row (baseline included).
    With ``eval_against_original``, agreement/PSNR are measured against the model before those rewrites
    (default: against the rewritten model's onnxruntime FP32 outputs).

    ``vary`` maps backend -> option -> values to try: that backend's rows are built once per combination
    (its ``options`` with the combination over them), each row carrying the combination in ``options``;
    the baseline uses the first. ``deadline`` (time.monotonic() seconds) bounds every row but the
    baseline: a row is not started after it (reported failed, "not run: ...") and none runs past it.
    """
    from .graph.commands import GraphSteps, apply_steps

    steps = GraphSteps(optimize=optimize, prune=prune, lowrank=lowrank)
    steps.check()
    tgt = resolve_target(target, targets_file, measure_host_peak=True)
    for p in precisions or []:
        if p not in PRECISIONS:
            raise UnknownNameError(f"unknown precision '{p}'; known: {', '.join(PRECISIONS)}")
    if "int8" in (precisions or []) and calibration is None:
        raise BadInputError("int8 rows need calibration data: --calibration DATA, or --calibration random for latency only")
    if max_accuracy_drop is not None and (eval_data is None or max_accuracy_drop < 0):
        raise BadInputError("--max-accuracy-drop needs --eval DATA and a budget >= 0 (percentage points)")
    settings_q = check_settings(quantize)
    cal_spec = calibration_spec(calibration, settings_q) if calibration is not None else None
    eval_spec = (eval_data if isinstance(eval_data, DataSpec) else DataSpec(str(eval_data))) if eval_data is not None else None
    if eval_spec is not None and eval_spec.is_random:
        raise BadInputError("--eval needs real data (an .npz with inputs and labels, or images), not random")
    if cal_spec is not None and cal_spec.is_random:
        warnings.warn(RANDOM_WARNING, RandomCalibrationWarning, stacklevel=2)
    sets = option_sets(options, vary)
    rows_plan = _plan_rows(tgt, backends, precisions, calibrated=cal_spec is not None)
    missing = sorted(set(sets) - {b for b, _, _ in rows_plan})
    if missing:
        raise BadInputError(f"--vary names {', '.join(missing)}, which this run has no rows for")
    plan = [(b, p, opts, varied, why) for i, (b, p, why) in enumerate(rows_plan)
            for opts, varied in _relevant(b, p, sets.get(b) or [((options or {}).get(b), None)])[: 1 if i == 0 else None]]
    base_sets = sets.get("onnxruntime", [])[1:]  # the baseline's other option sets are rows of their own
    plan[1:1] = [("onnxruntime", "fp32", opts, varied, None) for opts, varied in base_sets]
    prepared = prepare_model(model, _shapes(input_shapes))
    original = None
    if eval_against_original and steps and eval_spec is not None:
        from .graph.commands import copy_model

        original = copy_model(prepared.model)
    graph_passes, graph_notes = apply_steps(prepared, replace(steps, data=cal_spec))  # pruning is measured on it
    flops = analyze(prepared.model).flops
    # Read the data here first: a bad file fails the whole run at once, with its reason (exit 2).
    cal_feeds = load_dataset(cal_spec, prepared.inputs).batches[0] if cal_spec is not None else None
    eval_set = load_dataset(eval_spec, prepared.inputs) if eval_spec is not None else None
    work = Path(tempfile.mkdtemp(prefix="edgecc-compare-"))
    keep = Path(artifacts_dir) if artifacts_dir is not None else None
    try:
        model_path = save_model(prepared.model, work / "model.onnx")
        reference = work / "reference.npz"
        # Calibrated INT8 is verified on inputs like its calibration data: random inputs overflow its ranges.
        write_reference(prepared, reference, feeds=None if cal_spec is None or cal_spec.is_random else cal_feeds)
        eval_reference = None
        if eval_set is not None:
            import numpy as np

            from .evaluation import compute_metrics, onnx_outputs

            eval_reference = work / "eval-reference.npz"
            ref_path = model_path if original is None else save_model(original, work / "original.onnx")
            ref_outputs = onnx_outputs(str(ref_path), eval_set)
            compute_metrics(ref_outputs, eval_set.labels, ref_outputs)  # metrics that cannot apply fail here, once
            np.savez(eval_reference, outputs=ref_outputs)
        results: list[ResultRow] = []
        for i, (backend, precision, opts, varied, why) in enumerate(plan):
            rest = None if deadline is None or i == 0 else deadline - time.monotonic()  # the baseline always runs
            if why is not None:
                row = ResultRow(backend=backend, precision=precision, status="unavailable", error=why)
            elif rest is not None and rest <= 0:
                row = ResultRow(backend=backend, precision=precision, status="failed",
                                error=f"{BUDGET_ERRORS[0]} was spent before this row started")
            else:
                label = "".join(f"-{k}={v}" for k, v in (varied or {}).items())
                out = (keep or work / "artifacts") / f"{backend}-{precision}{label}"
                job = _RowJob(
                    str(model_path), prepared.source, prepared.name, prepared.sha256, tgt, backend, precision,
                    opts, str(out), str(reference), settings,
                    calibration=cal_spec, quantize=settings_q.model_dump(), eval_data=eval_spec,
                    eval_reference=str(eval_reference) if eval_reference is not None else None,
                    graph_passes=tuple(graph_passes), graph_notes=tuple(graph_notes),
                )
                limit = timeout_s if rest is None else min(timeout_s or rest, rest)
                outcome = run_isolated(_row_job, job, timeout_s=limit, memory_limit=memory_limit or default_memory_limit())
                row = _row_from_outcome(outcome, backend, precision)
                if rest is not None and limit == rest and outcome.kind == "timeout":
                    row = row.model_copy(update={"error": f"{BUDGET_ERRORS[1]} ran out after {rest:.0f} s of this row"})
                if keep is None:
                    row = row.model_copy(update={"artifact": None})
            if varied is not None:
                row = row.model_copy(update={"options": varied})
            results.append(row)
            if on_row is not None:
                on_row(row, i, len(plan))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = results[0]
    if base.latency_ms is not None:
        results = [
            r.model_copy(update={"speedup": base.latency_ms.p50 / r.latency_ms.p50}) if r.latency_ms else r for r in results
        ]
    if eval_set is not None:
        results = _accuracy_drops(results, max_accuracy_drop)
    from .artifact import common_versions
    from .targets import detect_host

    versions = common_versions()
    for name in {r.backend for r in results}:
        versions |= get_backend(name).availability().versions
    return CompareReport(
        model=prepared.source, target=tgt.name, baseline=Baseline(), results=results,
        measured_on=detect_host().description, versions=versions, flops=flops, peak_gflops=tgt.peak_fp32_gflops,
        calibration=cal_spec.describe() if cal_spec is not None else None,
        eval_data=eval_spec.describe() if eval_spec is not None else None, max_accuracy_drop=max_accuracy_drop,
    )


def _accuracy_drops(results: list[ResultRow], budget: float | None) -> list[ResultRow]:
    """Each row's drop from the baseline (first row): in top-1 accuracy with labels, else in agreement."""
    base = results[0]
    key = "accuracy" if base.accuracy is not None else "agreement"
    ref = getattr(base, key)
    out = []
    for r in results:
        got = getattr(r, key)
        if ref is None or got is None:
            out.append(r)
            continue
        drop = ref - got
        out.append(r.model_copy(update={
            "accuracy_drop": drop, "within_accuracy_budget": None if budget is None else drop <= budget,
        }))
    return out


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
    prepared = prepare_model(model, _shapes(input_shapes))
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
) -> QuantizeResult:
    """Quantise ``model`` to a QDQ INT8 ONNX file at ``output`` (written only on success), calibrated on
    ``calibration`` (a directory of images, an .npz/.npy, or ``random``: see edgecc.data)."""
    from .graph.quantize import quantize_prepared

    out = Path(output)
    if out.suffix != ".onnx":
        raise BadInputError(f"{out}: the quantised model is written as ONNX: give a path ending in .onnx")
    prepared = prepare_model(model, _shapes(input_shapes))
    result = quantize_prepared(prepared, calibration, settings)
    tmp = out.with_name(out.name + ".tmp")
    try:
        save_model(result.model, tmp)
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BadInputError(f"{out}: cannot write the quantised model: {e.strerror}") from None
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
        prepared = prepare_model(model_or_artifact, _shapes(input_shapes))
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


# -- graph rewrites (edgecc.graph.commands does the work) ----------------------------------------


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
    from .graph import commands

    return commands.optimize(
        model, output, input_shapes=_shapes(input_shapes), backend=_pack_backend(target, backend, targets_file),
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
):
    """Structured channel pruning made physical (weights sliced): ``ratio`` of each coupled channel group
    by ``criterion`` (l1, l2, bn-gamma, activation; "auto": activation with ``calibration``, else l1), or
    ``zero_channels`` (exact). With ``calibration`` (real samples) removed channels' means are folded into
    the next layers' biases. Returns the plan, FLOPs/params before and after, and the output difference
    from the original."""
    from .graph import commands

    cal = calibration_spec(calibration, check_settings(None)) if calibration is not None else None
    return commands.prune(
        model, output, ratio=ratio, zero_channels=zero_channels, criterion=criterion, round_to=round_to,
        exclude=exclude, input_shapes=_shapes(input_shapes), dry_run=dry_run, calibration=cal,
    )


def sparsify(
    model: str | os.PathLike[str], output: str | os.PathLike[str] | None, *, pattern: str = "unstructured",
    ratio: float = 0.5, input_shapes: ShapeArg = None,
):
    """Zero weights: ``pattern`` "unstructured" (the ``ratio`` smallest per layer) or "2:4" (ratio 0.5), recorded in
    the model metadata (``edgecc.sparsity``) for backends with sparse kernels. Reports the output error."""
    from .graph import commands

    return commands.sparsify(model, output, pattern=pattern, ratio=ratio, input_shapes=_shapes(input_shapes))


def lowrank(
    model: str | os.PathLike[str], output: str | os.PathLike[str] | None, *, energy: float = 0.95,
    input_shapes: ShapeArg = None,
):
    """SVD factorisation of Gemm/MatMul weights and 1x1 Convs keeping ``energy`` of the spectrum, only where
    FLOPs drop. Reports per-layer ranks and errors and the output error."""
    from .graph import commands

    return commands.lowrank(model, output, energy=energy, input_shapes=_shapes(input_shapes))
