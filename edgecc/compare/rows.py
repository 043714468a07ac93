"""One row of a comparison, built and measured in its own process: compile, profile, accuracy on the data."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..backends import get_backend
from ..data import DataSpec, load_dataset
from ..graph.io import PreparedModel, prepare_model
from ..graph.quantize import RandomCalibrationWarning, float_layers_noted
from ..isolation import default_memory_limit, run_isolated
from ..pipeline import build_artifact, profile_artifact, row_from_outcome
from ..profiling.timing import ProfileSettings
from ..report.schema import ResultRow
from ..targets import Target
from .plan import PlannedRow

#: the errors of rows the run's time budget stopped (their ``stopped_by_budget`` says which)
NOT_STARTED = "not run: the time budget was spent before this row started"


@dataclass(frozen=True)
class RowJob:
    """What the child process needs to build and measure one row; data travels as paths (DataSpec)."""

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
    calibration: DataSpec | None = None
    quantize: dict[str, object] | None = None
    eval_data: DataSpec | None = None
    eval_reference: str | None = None
    metric: str | None = None
    graph_passes: tuple[str, ...] = ()
    graph_notes: tuple[str, ...] = ()
    #: INT8 QDQ rows: the budget (points) held by keeping layers in float, measured on eval_data (mixed precision)
    max_accuracy_drop: float | None = None


def row_job(job: RowJob) -> ResultRow:
    """Build and measure one row (run in the child)."""
    prepared = prepare_model(job.model_path)
    prepared = PreparedModel(prepared.model, job.source, job.name, job.sha256)
    backend = get_backend(job.backend)
    int8 = job.precision == "int8"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomCalibrationWarning)  # the parent warned once
        artifact = build_artifact(
            prepared, job.target, backend, job.precision, job.options, Path(job.out_dir), reference=Path(job.reference),
            calibration=job.calibration if int8 else None, quantize=job.quantize if int8 else None,
            graph_passes=job.graph_passes, graph_notes=job.graph_notes, accuracy_budget=_budget(job, backend),
        )
    s = job.settings
    row = profile_artifact(
        artifact, backend, warmup=s.warmup, runs=s.runs, min_time_s=s.min_time_s, layer_runs=s.layer_runs
    )
    if int8 and job.calibration is not None:
        row = row.model_copy(update={"calibration": job.calibration.describe(),
                                     "float_layers": float_layers_noted(artifact.manifest.notes)})
    if job.eval_data is not None:
        row = row.model_copy(update=_accuracy(str(artifact.path), job.eval_data, job.eval_reference, prepared, job.metric))
    return row


def _budget(job: RowJob, backend) -> tuple[DataSpec, float] | None:  # noqa: ANN001 - a Backend
    """The accuracy budget an INT8 row holds by mixed precision: only QDQ rows (not a backend quantising itself)."""
    if job.precision != "int8" or job.max_accuracy_drop is None or job.eval_data is None:
        return None
    return None if backend.quantizes_itself(backend.parse_options(job.options)) else (job.eval_data, job.max_accuracy_drop)


def _accuracy(artifact_dir: str, data: DataSpec, reference_path: str | None, prepared: PreparedModel,
              metric: str | None) -> dict[str, object]:
    import numpy as np

    from ..evaluation import default_metrics, evaluate_artifact

    dataset = load_dataset(data, prepared.inputs)
    reference = None
    if reference_path is not None:
        with np.load(reference_path, allow_pickle=False) as ref:
            reference = ref["outputs"]
    metrics = default_metrics(dataset.labels, reference)
    if metric is not None and metric not in metrics:
        metrics += (metric,)
    res = evaluate_artifact(artifact_dir, dataset, reference, metrics)
    found = res.to_json()
    return {"accuracy": res.top1, "agreement": res.agreement, "eval_samples": res.samples,
            "psnr_db": found["psnr_db"], "metrics": found["metrics"]}


def run_row(planned: PlannedRow, job: RowJob | None, *, timeout_s: float | None, memory_limit: int | None,
            deadline: float | None) -> ResultRow:
    """``planned``'s row: unavailable with its reason, not started past ``deadline`` (time.monotonic() s;
    None: no budget), or ``job`` run isolated within ``timeout_s`` and whatever is left of the budget."""
    rest = None if deadline is None else deadline - time.monotonic()
    if planned.why is not None or job is None:
        return ResultRow(backend=planned.backend, precision=planned.precision, status="unavailable", error=planned.why)
    if rest is not None and rest <= 0:
        return ResultRow(backend=planned.backend, precision=planned.precision, status="failed", error=NOT_STARTED,
                         stopped_by_budget="not_started")
    limit = timeout_s if rest is None else min(timeout_s or rest, rest)
    outcome = run_isolated(row_job, job, timeout_s=limit, memory_limit=memory_limit or default_memory_limit())
    row = row_from_outcome(outcome, planned.backend, planned.precision)
    if rest is not None and limit == rest and outcome.kind == "timeout":
        row = row.model_copy(update={"error": f"stopped: the time budget ran out after {rest:.0f} s of this row",
                                     "stopped_by_budget": "cut_short"})
    return row
