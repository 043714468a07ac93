"""The comparator's loop: prepare the model once (graph steps, references), then build and measure every
planned row in its own process, and pair the rows with the baseline."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data import load_dataset
from ..graph.analysis import analyze
from ..graph.io import PreparedModel, prepare_model, save_model
from ..graph.steps import StepProgress, apply_recipe
from ..pipeline import write_reference
from ..report.schema import CompareReport, ResultRow
from .plan import PlannedRow, plan_rows
from .request import CompareRequest
from .results import build_report
from .rows import RowJob, run_row

OnRow = Callable[[ResultRow, int, int], None]


@dataclass(frozen=True)
class _Prepared:
    """The model every row is built from, saved once, and the reference outputs rows are checked against."""

    prepared: PreparedModel
    model_path: Path
    reference: Path
    eval_reference: Path | None
    passes: tuple[str, ...]
    notes: tuple[str, ...]


def _prepare(request: CompareRequest, work: Path, progress: StepProgress | None) -> tuple[_Prepared, int]:
    prepared = prepare_model(request.model, request.input_shapes)
    original = prepared.model.clone() if request.eval_against_original and request.graph and request.eval_data else None
    # pruning is measured, fine-tuning trained, on the calibration data
    steps = apply_recipe(prepared, request.graph, request.calibration, progress)
    flops = analyze(prepared.model).flops
    cal = request.calibration
    # Read the data here first: a bad file fails the whole run at once, with its reason (exit 2).
    cal_feeds = load_dataset(cal, prepared.inputs).batches[0] if cal is not None else None
    eval_set = load_dataset(request.eval_data, prepared.inputs) if request.eval_data is not None else None
    model_path = save_model(prepared.model, work / "model.onnx")
    reference = work / "reference.npz"
    # Calibrated INT8 is verified on inputs like its calibration data: random inputs overflow its ranges.
    write_reference(prepared, reference, feeds=None if cal is None or cal.is_random else cal_feeds)
    eval_reference = None
    if eval_set is not None:
        import numpy as np

        from ..evaluation import compute_metrics, default_metrics, onnx_outputs

        eval_reference = work / "eval-reference.npz"
        ref_path = model_path if original is None else save_model(original, work / "original.onnx")
        ref_outputs = onnx_outputs(str(ref_path), eval_set)
        metrics = default_metrics(eval_set.labels, ref_outputs) + ((request.metric,) if request.metric else ())
        compute_metrics(ref_outputs, eval_set.labels, ref_outputs, metrics)  # metrics that cannot apply fail here, once
        np.savez(eval_reference, outputs=ref_outputs)
    ready = _Prepared(prepared, model_path, reference, eval_reference, tuple(steps.passes), tuple(steps.notes))
    return ready, flops


def _job(request: CompareRequest, ready: _Prepared, planned: PlannedRow, out: Path) -> RowJob:
    p = ready.prepared
    return RowJob(
        str(ready.model_path), p.source, p.name, p.sha256, request.target, planned.backend, planned.precision,
        planned.options, str(out), str(ready.reference), request.settings,
        calibration=request.calibration, quantize=request.quantize.model_dump(), eval_data=request.eval_data,
        eval_reference=str(ready.eval_reference) if ready.eval_reference is not None else None,
        metric=request.metric, graph_passes=ready.passes, graph_notes=ready.notes,
        # the mixed-precision search measures top-1 (labels) or agreement: the drop compare budgets by default
        max_accuracy_drop=request.max_accuracy_drop if request.metric in (None, "top1") else None,
    )


def run_compare(request: CompareRequest, on_row: OnRow | None = None, progress: StepProgress | None = None) -> CompareReport:
    """Compile and profile ``request.model`` with every planned row, each in its own process, against the
    onnxruntime FP32 baseline measured in the same run. A row that crashes, hangs past the timeout, grows past
    the memory limit or fails verification is reported with its cause; the others complete. ``on_row(row, i,
    n)`` is called as each row finishes; ``progress(text)`` is told what a long graph step is doing."""
    plan = plan_rows(request)
    work = Path(tempfile.mkdtemp(prefix="edgecc-compare-"))
    keep = request.artifacts_dir
    try:
        ready, flops = _prepare(request, work, progress)
        if progress is not None:
            progress("comparing")
        results: list[ResultRow] = []
        for i, planned in enumerate(plan):
            job = _job(request, ready, planned, (keep or work / "artifacts") / planned.label)
            row = run_row(planned, job if planned.why is None else None, timeout_s=request.timeout_s,
                          memory_limit=request.memory_limit,
                          deadline=None if i == 0 else request.deadline)  # the baseline always runs
            if keep is None:
                row = row.model_copy(update={"artifact": None})
            if planned.varied is not None:
                row = row.model_copy(update={"options": planned.varied})
            results.append(row)
            if on_row is not None:
                on_row(row, i, len(plan))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return build_report(request, ready.prepared.source, flops, results)
