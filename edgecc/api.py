"""The public entry points: compile(), profile(), compare(), inspect(), load_artifact().

The CLI is a thin layer over these; anything the CLI can do, these do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .artifact import Artifact, load_artifact
from .backends import get_backend, registry
from .errors import BackendUnavailable, BadInputError, EdgeccError, UnknownNameError
from .graph.analysis import ModelAnalysis, analyze
from .graph.io import PreparedModel, parse_input_shapes, prepare_model, save_model
from .isolation import Outcome, run_isolated
from .pipeline import build_artifact, check_request, profile_artifact, write_reference
from .profiling.inputs import load_inputs
from .report.schema import Baseline, CompareReport, ResultRow
from .targets import Target, load_registry

__all__ = ["compile", "profile", "compare", "inspect", "load_artifact", "resolve_target", "ProfileSettings"]

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


def resolve_target(target: str | Target, targets_file: str | os.PathLike[str] | None = None) -> Target:
    return target if not isinstance(target, str) else load_registry(targets_file).get(target)


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
) -> Artifact:
    """Compile ``model`` (a path or ``zoo:NAME``) for ``target`` into the artifact directory ``out_dir``.

    ``backend`` defaults to the target's preferred backend. Nothing is written at ``out_dir`` unless
    the compile succeeds.
    """
    tgt = resolve_target(target, targets_file)
    be = get_backend(backend or tgt.preferred_backend)
    check_request(be, tgt, precision)
    prepared = prepare_model(model, _shapes(input_shapes))
    return build_artifact(prepared, tgt, be, precision, options, Path(out_dir))


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
    device: str | None = None,
) -> ResultRow:
    """Run a compiled artifact here, again without recompiling: latency, per-layer times, and outputs
    checked against the reference stored at compile time. With ``inputs`` (.npz), those are used and
    the row is not verified. ``isolate`` runs it in a child process, so a crash becomes a failed row.
    ``device`` runs it on a remote board instead (rpc://HOST:PORT or rpc://TRACKER:PORT/KEY, TVM artifacts)."""
    artifact = load_artifact(artifact_dir)  # checksums are checked here, before any work
    backend = get_backend(artifact.manifest.backend)
    backend.require()
    if device is not None and device != "local":
        from .remote.rpc import parse_device

        parse_device(device)  # a malformed address is the user's input error: report it before any work
    if not isolate:
        return _profile_job(str(artifact.path), settings, inputs, device)
    outcome = run_isolated(_profile_job, str(artifact.path), settings, inputs, device, timeout_s=timeout_s)
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


def _row_job(job: _RowJob) -> ResultRow:
    prepared = prepare_model(job.model_path)
    prepared = PreparedModel(prepared.model, job.source, job.name, job.sha256)
    backend = get_backend(job.backend)
    artifact = build_artifact(prepared, job.target, backend, job.precision, job.options, Path(job.out_dir), reference=Path(job.reference))
    s = job.settings
    return profile_artifact(
        artifact, backend, warmup=s.warmup, runs=s.runs, min_time_s=s.min_time_s, layer_runs=s.layer_runs
    )


def _plan_rows(target: Target, backends: list[str] | None, precisions: list[str] | None) -> list[tuple[str, str, str | None]]:
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
        for p in precisions or list(can):
            if (name, p) == ("onnxruntime", "fp32"):
                continue
            if not avail.available:
                why = f"{avail.reason}; install it with: {be.install_command}"
            elif p not in can:
                why = f"backend {name} cannot run {p} on target {target.name}; it can: {', '.join(can)}"
            else:
                why = None
            rows.append((name, p, why))
    return rows


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
    artifacts_dir: str | os.PathLike[str] | None = None,
    targets_file: str | os.PathLike[str] | None = None,
    on_row: Callable[[ResultRow, int, int], None] | None = None,
) -> CompareReport:
    """Compile and profile ``model`` with every backend x precision on ``target``, each in its own
    process, against the onnxruntime FP32 baseline measured in the same run.

    A row that crashes, hangs past ``timeout_s`` or fails verification is reported with its cause;
    the others complete. ``options`` maps backend name -> that backend's options. ``on_row(row, i, n)``
    is called as each row finishes. Artifacts are kept under ``artifacts_dir`` when given.
    """
    tgt = resolve_target(target, targets_file)
    for p in precisions or []:
        if p not in ("fp32", "bf16", "fp16", "int8"):
            raise UnknownNameError(f"unknown precision '{p}'; known: fp32, bf16, fp16, int8")
    plan = _plan_rows(tgt, backends, precisions)
    prepared = prepare_model(model, _shapes(input_shapes))
    flops = analyze(prepared.model).flops
    work = Path(tempfile.mkdtemp(prefix="edgecc-compare-"))
    keep = Path(artifacts_dir) if artifacts_dir is not None else None
    try:
        model_path = save_model(prepared.model, work / "model.onnx")
        reference = work / "reference.npz"
        write_reference(prepared, reference)
        results: list[ResultRow] = []
        for i, (backend, precision, why) in enumerate(plan):
            if why is not None:
                row = ResultRow(backend=backend, precision=precision, status="unavailable", error=why)
            else:
                out = (keep or work / "artifacts") / f"{backend}-{precision}"
                job = _RowJob(
                    str(model_path), prepared.source, prepared.name, prepared.sha256, tgt, backend, precision,
                    (options or {}).get(backend), str(out), str(reference), settings,
                )
                row = _row_from_outcome(run_isolated(_row_job, job, timeout_s=timeout_s), backend, precision)
                if keep is None:
                    row = row.model_copy(update={"artifact": None})
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
    from .artifact import common_versions
    from .targets import detect_host

    versions = common_versions()
    for name in {r.backend for r in results}:
        versions |= get_backend(name).availability().versions
    return CompareReport(
        model=prepared.source, target=tgt.name, baseline=Baseline(), results=results,
        measured_on=detect_host().description, versions=versions, flops=flops,
    )


@dataclass
class BackendSupport:
    backend: str
    available: bool
    reason: str
    unsupported_ops: list[str]


def inspect(
    model: str | os.PathLike[str], *, input_shapes: ShapeArg = None
) -> tuple[PreparedModel, ModelAnalysis, list[BackendSupport]]:
    """Validate ``model`` and describe it: inputs/outputs, opsets, op histogram, params, FLOPs, and
    for each installed backend which ops it cannot run."""
    prepared = prepare_model(model, _shapes(input_shapes))
    analysis = analyze(prepared.model)
    support = []
    for name in registry.names():
        be = get_backend(name)
        a = be.availability()
        if not a.available:
            support.append(BackendSupport(name, False, f"{a.reason}; install: {be.install_command}", []))
            continue
        try:
            support.append(BackendSupport(name, True, "", be.unsupported_ops(prepared)))
        except EdgeccError as e:
            support.append(BackendSupport(name, False, str(e), []))
    return prepared, analysis, support
