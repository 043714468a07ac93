"""The compile and profile steps every backend goes through, in-process.

``build_artifact`` turns a prepared model into a verified artifact directory (backend files, the
reference inputs/outputs from onnxruntime on the original model, manifest). ``profile_artifact``
runs an artifact: checks its outputs against that reference, times it and breaks it down per layer.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .artifact import REFERENCE, Artifact, Manifest, ModelInfo, TensorSpecModel, common_versions, write_artifact
from .backends import Backend, Runner
from .data import RANDOM_WARNING, DataSpec, load_dataset
from .errors import BadInputError, UnsupportedError
from .graph.analysis import analyze
from .graph.io import PreparedModel, save_model
from .graph.quantize import QuantizeSettings, calibration_spec, check_settings, quantize_prepared
from .isolation import Outcome
from .profiling.inputs import make_inputs
from .profiling.roofline import roofline_fraction
from .profiling.timing import LatencyStats, measure
from .profiling.verify import TOLERANCES, compare_outputs, reference_outputs
from .report.schema import LayerRow, ResultRow
from .targets import Target

INPUT_PREFIX = "input:"
OUTPUT_PREFIX = "output:"


def row_from_outcome(outcome: Outcome, backend: str, precision: str) -> ResultRow:
    """The row of an isolated child's ``outcome``: its row when it ran, else a failed or unavailable row with the cause."""
    if outcome.ok:
        return outcome.value
    status = "unavailable" if outcome.error_type in ("BackendUnavailable", "UnsupportedError") else "failed"
    return ResultRow(backend=backend, precision=precision, status=status, error=outcome.message)


def check_request(backend: Backend, target: Target, precision: str) -> None:
    """Fail early, with the reason, when ``backend`` cannot build ``precision`` for ``target``."""
    why = backend.target_support(target)
    if why is not None:
        raise UnsupportedError(why)
    backend.require()
    backend.check_precision(target, precision)


def check_ops(backend: Backend, model: PreparedModel) -> None:
    missing = backend.unsupported_ops(model)
    if missing:
        raise UnsupportedError(f"{model.source}: backend {backend.name} does not support op(s): {', '.join(missing)}")


def write_reference(
    model: PreparedModel, path: Path, seed: int = 0, feeds: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Seeded inputs (or ``feeds``) and onnxruntime's outputs on ``model``, saved together as one .npz."""
    feeds = feeds if feeds is not None else make_inputs(model.model, model.inputs, seed)
    with tempfile.TemporaryDirectory(prefix="edgecc-ref-") as tmp:
        outputs = reference_outputs(str(save_model(model.model, Path(tmp) / "model.onnx")), feeds)
    arrays = {INPUT_PREFIX + k: v for k, v in feeds.items()} | {OUTPUT_PREFIX + k: v for k, v in outputs.items()}
    np.savez(path, **arrays)
    return feeds, outputs


def read_reference(artifact: Artifact) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    path = artifact.file(REFERENCE)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        feeds = {k[len(INPUT_PREFIX):]: data[k] for k in data.files if k.startswith(INPUT_PREFIX)}
        outputs = {k[len(OUTPUT_PREFIX):]: data[k] for k in data.files if k.startswith(OUTPUT_PREFIX)}
    return feeds, outputs


def build_artifact(
    model: PreparedModel,
    target: Target,
    backend: Backend,
    precision: str,
    options: dict[str, object] | None,
    out_dir: Path,
    *,
    reference: bool | Path = True,
    calibration: DataSpec | str | None = None,
    quantize: QuantizeSettings | dict | None = None,
    graph_passes: list[str] | tuple[str, ...] = (),
    graph_notes: list[str] | tuple[str, ...] = (),
    accuracy_budget: tuple[DataSpec, float] | None = None,
) -> Artifact:
    """Compile ``model`` with ``backend`` for ``target`` into ``out_dir`` (replaced only on success).

    ``reference``: True computes the reference inputs/outputs here (on the first calibration batch for
    INT8 calibrated on real data, whose ranges random inputs would overflow); a path copies an existing
    reference .npz (made by :func:`write_reference` on the same model); False stores none.
    ``calibration`` (int8 only, required there): the data INT8 ranges are calibrated on; ``quantize``:
    the QDQ settings (edgecc.graph.quantize.QuantizeSettings).
    ``graph_passes``/``graph_notes``: graph rewrites already applied to ``model`` (edgecc.graph.steps.apply_recipe),
    recorded in the manifest. ``accuracy_budget`` (evaluation data, points; QDQ INT8 only): keep in float the
    fewest layers that hold the drop within it (recorded as ``mixed-precision(float_layers=N)``).
    """
    check_request(backend, target, precision)
    parsed = backend.parse_options(options)
    int8 = precision == "int8"
    if int8 and calibration is None:
        raise BadInputError(
            "int8 needs calibration data: --calibration DATA (a directory of images, an .npz or .npy of inputs), "
            "or --calibration random for latency-only work"
        )
    settings = check_settings(quantize) if int8 else None
    spec = calibration_spec(calibration, settings) if int8 else None
    check_ops(backend, model)

    def build(staging: Path) -> Manifest:
        t0 = time.perf_counter()
        compiled, passes, notes, extra = model, [], [], {}
        data = load_dataset(spec, model.inputs) if spec is not None else None
        if spec is not None and backend.quantizes_itself(parsed):
            extra["calibration"] = data
            notes.append(f"calibration: {spec.describe()}")
            if spec.is_random:
                notes.append("WARNING: " + RANDOM_WARNING)
        elif spec is not None:
            budget = accuracy_budget or (None, None)
            q = quantize_prepared(model, spec, settings, dataset=data, eval_data=budget[0], max_drop=budget[1])
            compiled = PreparedModel(q.model, model.source, model.name, model.sha256)
            passes.append(settings.pass_record())
            if q.mixed is not None:
                passes.append(f"mixed-precision(float_layers={len(q.mixed.float_layers)})")
            notes += q.notes
            check_ops(backend, compiled)
        result = backend.compiler().compile(compiled, target, precision, parsed, staging, **extra)
        compile_s = time.perf_counter() - t0
        if isinstance(reference, Path):
            shutil.copyfile(reference, staging / REFERENCE)
        elif reference:
            feeds = data.batches[0] if data is not None and spec is not None and not spec.is_random else None
            write_reference(model, staging / REFERENCE, feeds=feeds)
        return Manifest(
            backend=backend.name,
            precision=precision,
            versions=common_versions() | backend.availability().versions,
            target=target,
            model=ModelInfo(source=model.source, name=model.name, sha256=model.sha256, flops=analyze(model.model).flops),
            inputs=[TensorSpecModel(**s.to_json()) for s in model.inputs],
            outputs=[TensorSpecModel(**s.to_json()) for s in model.outputs],
            passes=["fix-input-shapes", "shape-inference", *graph_passes, *passes, *result.passes],
            options=result.options.model_dump(mode="json"),
            notes=[*graph_notes, *notes, *result.notes],
            compile_s=round(compile_s, 4),
            files={},
        )

    return write_artifact(out_dir, build)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def profile_artifact(
    artifact: Artifact,
    backend: Backend,
    *,
    warmup: int = 10,
    runs: int = 50,
    min_time_s: float = 1.0,
    layer_runs: int = 10,
    feeds: dict[str, np.ndarray] | None = None,
    open_runner: Callable[[], Runner] | None = None,
) -> ResultRow:
    """Run ``artifact`` here: verify against its reference, time it, profile per layer.

    ``feeds`` replaces the stored reference inputs; outputs are then verified only if a reference
    for exactly those inputs is not available (the row says ``verified: null``). ``open_runner`` opens
    a runner elsewhere instead (edgecc.remote.run passes the backend's runner on a board), measured
    without per-layer times.
    """
    backend.require()
    manifest = artifact.manifest
    ref = read_reference(artifact)
    expected = None
    if feeds is None:
        if ref is None:
            feeds = make_inputs(None, artifact.inputs)
        else:
            feeds, expected = ref
    remote = open_runner is not None
    opened = open_runner() if open_runner is not None else backend.open_runner(artifact)
    with opened as runner:
        outputs = runner.run(feeds)
        samples = measure(lambda: runner.run(feeds), warmup=warmup, runs=runs, min_time_s=min_time_s)
        # Backends on an accelerator also time the model alone on the device (TensorRT: CUDA events).
        device_times = runner.device_times_ms(feeds, warmup, len(samples))
        device = LatencyStats.from_samples(np.asarray(device_times)) if device_times is not None else None
    layers: list[LayerRow] = []
    if layer_runs > 0 and not remote:
        with backend.open_runner(artifact, profile_layers=True) as runner:
            found = runner.layer_profile(feeds, layer_runs) or []
        layers = [LayerRow(name=l.name, op_type=l.op_type, time_ms=l.time_ms, exec_type=l.exec_type) for l in found]
    stats = LatencyStats.from_samples(samples)
    batch = manifest.inputs[0].shape[0] if manifest.inputs and manifest.inputs[0].shape else 1
    row = ResultRow(
        backend=manifest.backend,
        precision=manifest.precision,
        status="ok",
        latency_ms=stats,
        device_latency_ms=device,
        throughput_per_s=1000.0 * batch / stats.mean,
        compile_s=manifest.compile_s,
        artifact_bytes=artifact.total_bytes,
        runs=len(samples),
        peak_memory_bytes=peak_rss_bytes(),
        gflops_per_s=(manifest.model.flops / (stats.p50 * 1e6)) if manifest.model.flops else None,
        roofline_fraction=roofline_fraction(manifest.model.flops, stats.p50, manifest.target.peak_fp32_gflops),
        layers=layers,
        artifact=str(artifact.path),
    )
    if expected is not None:
        err = compare_outputs(expected, outputs)
        ok = err.within(TOLERANCES[manifest.precision])
        row = row.model_copy(update={
            "max_abs_error": err.max_abs_error, "mean_abs_error": err.mean_abs_error, "cosine": err.cosine,
            "verified": ok, "status": "ok" if ok else "failed",
            "error": None if ok else err.describe_failure(manifest.precision),
        })
    return row
