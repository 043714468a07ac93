"""The search loop: one compare() per graph variant, accuracy against the original model, the time budget,
resumption from a saved run, the Pareto frontier and the recommended variant with its compile command."""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import api
from ..data import DataSpec
from ..errors import BadInputError
from ..report.pareto import pareto_front
from ..report.schema import ResultRow
from .grid import GraphVariant
from .strategy import GridStrategy, OptunaStrategy, PruneRange


@dataclass
class Measured:
    """The rows of one graph variant, as compare() returned them, and what its graph cost."""

    variant: GraphVariant
    rows: list[ResultRow]
    flops: int | None = None
    seconds: float = 0.0
    reused: bool = False

    def to_json(self) -> dict[str, object]:
        return {"prune": self.variant.prune, "lowrank": self.variant.lowrank, "flops": self.flops,
                "seconds": round(self.seconds, 3), "rows": [r.model_dump(mode="json") for r in self.rows]}


@dataclass
class SearchResult:
    model: str
    target: str
    metric: str  # "top1" (labelled set) or "agreement" (with the original's onnxruntime FP32 outputs)
    baseline: dict[str, object]
    variants: list[dict[str, object]]
    pareto: list[str]
    recommended: dict[str, object] | None
    measured: list[Measured]
    not_run: list[str]
    messages: list[str]
    request: dict[str, object]
    max_accuracy_drop: float
    measured_on: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    peak_gflops: float | None = None
    eval_data: str | None = None
    pareto_size: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": "edgecc-search", "model": self.model, "target": self.target, "baseline": self.baseline,
            "variants": self.variants, "pareto": self.pareto, "recommended": self.recommended,
            "pareto_with_size": self.pareto_size,
            "accuracy_metric": self.metric, "max_accuracy_drop": self.max_accuracy_drop, "eval_data": self.eval_data,
            "not_run": self.not_run, "messages": self.messages, "request": self.request,
            "measured_on": self.measured_on, "versions": self.versions, "peak_gflops": self.peak_gflops,
            "graph_variants": [m.to_json() for m in self.measured],
        }


def row_id(variant: GraphVariant, row: ResultRow) -> str:
    """``openvino-int8-prune0.3-lowrankoff``, then the varied options: ``...-performance_hint=THROUGHPUT``."""
    return "-".join([row.backend, row.precision, variant.key, *(f"{k}={v}" for k, v in (row.options or {}).items())])


def compile_command(model: str, target: str, row: dict[str, object], *, calibration: DataSpec | None = None,
                    quantize: dict[str, object] | None = None, input_shapes: list[str] | None = None,
                    targets_file: str | None = None, output: str | None = None,
                    options: dict[str, dict[str, object]] | None = None) -> str:
    """The ``edgecc compile`` command line that rebuilds ``row`` (a search variant) as an artifact directory:
    ``options`` are the run's --option values, ``row["options"]`` the ones it varied for this row."""
    args = ["edgecc", "compile", model, "--target", target, "--backend", str(row["backend"]),
            "--precision", str(row["precision"])]
    for key, value in ((options or {}).get(str(row["backend"]), {}) | (row.get("options") or {})).items():
        args += ["--option", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    if row.get("prune") is not None:
        args += ["--prune", f"{row['prune']:g}"]
    if row.get("lowrank") is not None:
        args += ["--lowrank", f"{row['lowrank']:g}"]
    for s in input_shapes or []:
        args += ["--input-shape", s]
    if targets_file is not None:
        args += ["--targets-file", str(targets_file)]
    if (row["precision"] == "int8" or row.get("prune") is not None) and calibration is not None:  # pruning is measured on it too
        args += ["--calibration", calibration.source]
        prep = calibration.preprocessing
        if prep.mean is not None:
            args += ["--mean", ",".join(f"{v:g}" for v in prep.mean)]
        if prep.std is not None:
            args += ["--std", ",".join(f"{v:g}" for v in prep.std)]
        if prep.layout is not None:
            args += ["--layout", prep.layout]
        q = quantize or {}
        if "method" in q:
            args += ["--method", str(q["method"])]
        if "per_channel" in q:
            args += ["--per-channel" if q["per_channel"] else "--per-tensor"]
        if "samples" in q:
            args += ["--samples", str(q["samples"])]
    args += ["-o", output or str(row["id"])]
    return shlex.join(args)


def _load_saved(path: Path | None, model: str, target: str, eval_data: str, request: dict[str, object]
                ) -> tuple[list[Measured], dict[str, object]]:
    """Graph variants of an earlier run at ``path`` (same model, target, evaluation set and request), and
    where they were measured."""
    if path is None or str(path) == "-" or not path.exists():
        return [], {}
    try:
        data = json.loads(path.read_text())
        if data.get("kind") != "edgecc-search":
            raise ValueError("not a search result")
        if (data["model"], data["target"], data.get("eval_data")) != (model, target, eval_data):
            raise BadInputError(
                f"--json {path} holds a search of {data['model']} on {data['target']} evaluated on {data.get('eval_data')}, "
                f"not {model} on {target} on {eval_data}: give another --json path (that file is left as it is)")
        if data.get("request") != request:
            return [], {}  # other backends / precisions / calibration: its rows do not answer this question
        context = {k: data[k] for k in ("measured_on", "versions", "peak_gflops") if k in data}
        return [Measured(GraphVariant(g["prune"], g["lowrank"]), [ResultRow.model_validate(r) for r in g["rows"]],
                         g.get("flops"), g.get("seconds", 0.0), reused=True) for g in data["graph_variants"]], context
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadInputError(f"--json {path}: cannot resume from it ({e}); give another path (that file is left as it is)") from None


def _score(result: SearchResult, variant: GraphVariant) -> float:
    """What the strategy maximises: the best speedup among ``variant``'s rows within the accuracy budget, 0 if none."""
    ids = {row_id(variant, r) for m in result.measured if m.variant == variant for r in m.rows}
    return max((v["speedup"] for v in result.variants if v["id"] in ids and v["within_accuracy_budget"]
                and v["speedup"] is not None), default=0.0)


def _cut_by_budget(row: ResultRow) -> bool:
    return row.status == "failed" and (row.error or "").startswith(api.BUDGET_ERRORS)


def _metric_value(row: ResultRow, metric: str) -> float | None:
    return row.accuracy if metric == "top1" else row.agreement


def _derive(measured: list[Measured], budget: float, model: str, target: str, cmd: dict[str, object]
            ) -> tuple[str, dict[str, object], list[dict[str, object]], list[str], dict[str, object] | None]:
    original = next(m for m in measured if m.variant.is_original)
    base = original.rows[0]
    if base.status != "ok" or base.latency_ms is None:
        raise BadInputError(f"the onnxruntime FP32 baseline of the original model did not run: {base.error}")
    metric = "top1" if base.accuracy is not None else "agreement"
    base_value = _metric_value(base, metric)
    if base_value is None:
        raise BadInputError("the evaluation gave no accuracy or agreement for the baseline: nothing to measure a drop from")
    baseline = {"id": row_id(original.variant, base), "backend": base.backend, "precision": base.precision,
                "latency_ms_p50": base.latency_ms.p50, "accuracy": base_value, "accuracy_metric": metric,
                "eval_samples": base.eval_samples}
    variants: list[dict[str, object]] = []
    for m in measured:
        for r in m.rows:
            value = _metric_value(r, metric) if r.status == "ok" else None
            # rounded: percentages of a finite set differ by FP noise (96.9 - 95.9), which must not decide the budget
            drop = None if value is None else round(base_value - value, 9)
            v = r.model_dump(mode="json")
            v.update({
                "id": row_id(m.variant, r), "prune": m.variant.prune, "lowrank": m.variant.lowrank,
                "top1_accuracy": r.accuracy, "accuracy": value, "accuracy_metric": metric, "accuracy_drop": drop,
                "within_accuracy_budget": None if drop is None else drop <= budget,
                "speedup": base.latency_ms.p50 / r.latency_ms.p50 if r.latency_ms is not None else None,
                "graph_flops": m.flops,
            })
            variants.append(v)
    measured_ok = [v for v in variants if v["status"] == "ok" and v["latency_ms"] is not None and v["accuracy_drop"] is not None]
    pareto = pareto_front([(v["id"], (v["latency_ms"]["p50"], v["accuracy_drop"])) for v in measured_ok])
    fits = [v for v in measured_ok if v["within_accuracy_budget"]]
    recommended = None
    if fits:
        best = min(fits, key=lambda v: v["latency_ms"]["p50"])
        recommended = dict(best, command=compile_command(model, target, best, **cmd))
    return metric, baseline, variants, pareto, recommended


def size_front(variants: list[dict[str, object]]) -> list[str]:
    """Ids on the frontier of latency, accuracy drop and artifact size (bytes), all minimised; rows without a
    measured drop or size take no part."""
    rows = [v for v in variants if v["status"] == "ok" and v["latency_ms"] is not None
            and v["accuracy_drop"] is not None and v.get("artifact_bytes") is not None]
    return pareto_front([(v["id"], (v["latency_ms"]["p50"], v["accuracy_drop"], v["artifact_bytes"])) for v in rows])


def search(
    model: str | os.PathLike[str],
    target: str,
    *,
    eval_data: DataSpec | str,
    backends: list[str] | None = None,
    precisions: list[str] | None = None,
    prune: list[float | None] | PruneRange = (None,),
    lowrank: list[float | None] = (None,),
    max_accuracy_drop: float = 1.0,
    time_budget_s: float | None = None,
    calibration: DataSpec | str | None = None,
    quantize: dict[str, object] | None = None,
    input_shapes: list[str] | None = None,
    targets_file: str | os.PathLike[str] | None = None,
    settings: api.ProfileSettings = api.ProfileSettings(layer_runs=10),
    timeout_s: float | None = 1800,
    options: dict[str, dict[str, object]] | None = None,
    vary: dict[str, dict[str, list[object]]] | None = None,
    strategy: str = "grid",
    max_variants: int = 12,
    seed: int = 0,
    resume: str | os.PathLike[str] | None = None,
    on_variant: Callable[[SearchResult | None, Measured, int, int, float | None], None] | None = None,
    on_row: Callable[[ResultRow, int, int], None] | None = None,
) -> SearchResult:
    """Measure graph variants (``prune`` ratios x ``lowrank`` energies; None is "off") with every backend x
    precision, and recommend the fastest row losing at most ``max_accuracy_drop`` points against the original
    model's onnxruntime FP32 baseline.

    ``strategy`` "grid" measures every pair; "optuna" measures up to ``max_variants`` graph variants that
    Optuna's TPE sampler (``seed``) picks from ``prune`` (a list, or a PruneRange) x ``lowrank``, maximising
    the best speedup within the accuracy budget (see edgecc.search.strategy).

    ``vary`` (backend -> option -> values) builds that backend's rows once per combination of values
    (OpenVINO's performance hint, TVM's trial budget...), each a variant of its own.

    The original graph runs first (its onnxruntime FP32 row is the baseline, always measured). Within
    ``time_budget_s`` (seconds, None: no limit) rows are measured as they come; no row runs past it, rows
    it cuts short are reported failed, and graph variants not started are listed in ``not_run``.
    ``resume`` is the JSON of an earlier run (same model, target, evaluation set and request): its graph
    variants are not measured again, and those outside this grid are kept in the result.
    ``on_variant(result_so_far, measured, done, total, seconds_left)`` is called after each graph variant
    (the CLI saves ``result_so_far`` there, so an interrupted search can be resumed).
    """
    if max_accuracy_drop < 0:
        raise BadInputError("--max-accuracy-drop must be >= 0 (percentage points)")
    if time_budget_s is not None and time_budget_s < 0:
        raise BadInputError("--time-budget must be >= 0")
    for v in [] if isinstance(prune, PruneRange) else prune:
        if v is not None and not 0.0 < v < 1.0:
            raise BadInputError(f"--prune: every ratio must be 0 (off) or between 0 and 1 (exclusive), got {v:g}")
    for v in lowrank:
        if v is not None and not 0.0 < v <= 1.0:
            raise BadInputError(f"--lowrank: every energy must be 'off' or in (0, 1], got {v:g}")
    eval_spec = eval_data if isinstance(eval_data, DataSpec) else DataSpec(str(eval_data))
    cal_spec = calibration if isinstance(calibration, DataSpec) or calibration is None else DataSpec(str(calibration))
    model_name = str(model)
    request = {"backends": backends, "precisions": precisions, "calibration": cal_spec.describe() if cal_spec else None,
               "quantize": quantize, "input_shapes": input_shapes, "options": options}
    if vary:
        request["vary"] = vary  # only when given: runs saved before --vary existed still resume
    earlier, context = _load_saved(Path(resume) if resume else None, model_name, target, eval_spec.describe(), request)
    # a graph variant the earlier run's time budget cut short is measured again, whole
    saved = {m.variant: m for m in earlier if not any(_cut_by_budget(r) for r in m.rows)}
    if strategy == "grid":
        strat = GridStrategy(prune, lowrank)
    elif strategy == "optuna":
        strat = OptunaStrategy(prune, lowrank, max_variants, known=list(saved), seed=seed)
    else:
        raise BadInputError(f"--strategy '{strategy}': grid or optuna")
    outside = [m for v, m in saved.items() if not strat.covers(v)]  # kept in every result: they are the user's measurements
    cmd = {"calibration": cal_spec, "quantize": quantize, "input_shapes": input_shapes,
           "targets_file": str(targets_file) if targets_file is not None else None, "options": options}
    measured: list[Measured] = []
    not_run: list[str] = []
    messages: list[str] = []
    start = time.monotonic()

    def left() -> float | None:
        return None if time_budget_s is None else time_budget_s - (time.monotonic() - start)

    result: SearchResult | None = None
    while (variant := strat.next()) is not None:
        if variant in saved:
            m = saved.pop(variant)
        elif not variant.is_original and (rest := left()) is not None and rest <= 0:
            if strat.stops_when_time_is_up:
                messages.append(f"time budget of {time_budget_s:g} s spent after {len(measured)} graph variants")
                break
            not_run.append(variant.key)
            continue
        else:
            t0 = time.monotonic()
            report = api.compare(
                model, target, backends=backends, precisions=precisions, input_shapes=input_shapes, options=options,
                settings=settings, timeout_s=timeout_s, targets_file=targets_file, on_row=on_row,
                calibration=cal_spec, quantize=quantize, eval_data=eval_spec,
                prune=variant.prune, lowrank=variant.lowrank, eval_against_original=True, vary=vary,
                deadline=None if time_budget_s is None else start + time_budget_s,
            )
            m = Measured(variant, report.results, report.flops, time.monotonic() - t0)
            context = {"measured_on": report.measured_on, "versions": report.versions, "peak_gflops": report.peak_gflops}
        measured.append(m)
        result = _result(measured + outside, max_accuracy_drop, model_name, target, cmd, not_run, messages, request, context, eval_spec)
        strat.tell(variant, _score(result, variant))
        if on_variant is not None:
            on_variant(result, m, len(measured) + len(not_run), strat.total, left())
    measured += outside
    if not_run:
        messages.append(f"time budget of {time_budget_s:g} s spent: {len(not_run)} of {strat.total} graph variants "
                        f"not measured ({', '.join(not_run)}); run again with the same --json to continue")
    cut = [row_id(m.variant, r) for m in measured for r in m.rows if _cut_by_budget(r)]
    if cut:
        messages.append(f"time budget of {time_budget_s:g} s spent: {len(cut)} row(s) not measured or cut short "
                        f"({', '.join(cut)})")
    reused = sum(m.reused for m in measured)
    if reused:
        messages.append(f"{reused} graph variant(s) taken from the earlier run, not measured again")
    result = _result(measured, max_accuracy_drop, model_name, target, cmd, not_run, messages, request, context, eval_spec)
    if result.recommended is None:
        messages.append(f"no measured variant stays within {max_accuracy_drop:g} points of the baseline's "
                        f"{result.metric}: nothing recommended")
    return result


def _result(measured, budget, model, target, cmd, not_run, messages, request, context, eval_spec) -> SearchResult:
    metric, baseline, variants, pareto, recommended = _derive(measured, budget, model, target, cmd)
    return SearchResult(
        model=model, target=target, metric=metric, baseline=baseline, variants=variants, pareto=pareto,
        recommended=recommended, measured=list(measured), not_run=list(not_run), messages=list(messages), request=request,
        max_accuracy_drop=budget, eval_data=eval_spec.describe(), pareto_size=size_front(variants), **context,
    )
