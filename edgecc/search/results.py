"""What a search found: each graph variant's rows, the accuracy drop of every row against the original model's
baseline, the Pareto frontiers, and the recommended variant with the compile command that rebuilds it."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from ..compare.results import metric_value
from ..data import DataSpec
from ..errors import BadInputError
from ..graph.steps import searchable_steps
from ..report.pareto import pareto_front
from ..report.schema import ResultRow
from .grid import GraphVariant


@dataclass
class Measured:
    """The rows of one graph variant, as the comparator returned them, and what its graph cost."""

    variant: GraphVariant
    rows: list[ResultRow]
    flops: int | None = None
    seconds: float = 0.0
    reused: bool = False

    def to_json(self) -> dict[str, object]:
        return {**self.variant.to_json(), "flops": self.flops, "seconds": round(self.seconds, 3),
                "rows": [r.model_dump(mode="json") for r in self.rows]}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Measured:
        return cls(GraphVariant.from_json(data), [ResultRow.model_validate(r) for r in data["rows"]],
                   data.get("flops"), data.get("seconds", 0.0), reused=True)


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
    """``openvino-int8-`` and the variant key (``prune0.3-...``), then the varied options: ``...-performance_hint=THROUGHPUT``."""
    return "-".join([row.backend, row.precision, variant.key, *(f"{k}={v}" for k, v in (row.options or {}).items())])


def _data_args(calibration: DataSpec, quantize: dict[str, object] | None) -> list[str]:
    args = ["--calibration", calibration.source]
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
    if q.get("equalize"):
        args += ["--equalize"]
    if q.get("bias_correction"):
        args += ["--bias-correction", str(q["bias_correction"])]
    return args


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
    for step in searchable_steps():
        if row.get(step.name) is not None:
            args += [step.flag, f"{row[step.name]:g}"]
    for s in input_shapes or []:
        args += ["--input-shape", s]
    if targets_file is not None:
        args += ["--targets-file", str(targets_file)]
    # steps that measure on data (pruning) use the calibration data too
    measures = any(row.get(s.name) is not None and s.measures_on_data for s in searchable_steps())
    if (row["precision"] == "int8" or measures) and calibration is not None:
        args += _data_args(calibration, quantize)
    args += ["-o", output or str(row["id"])]
    return shlex.join(args)


def _baseline(original: Measured, metric: str | None) -> tuple[ResultRow, str, float, dict[str, object]]:
    base = original.rows[0]
    if base.status != "ok" or base.latency_ms is None:
        raise BadInputError(f"the onnxruntime FP32 baseline of the original model did not run: {base.error}")
    metric = metric or ("top1" if base.accuracy is not None else "agreement")
    base_value = metric_value(base, metric)
    if base_value is None:
        raise BadInputError("the evaluation gave no accuracy or agreement for the baseline: nothing to measure a drop from")
    baseline = {"id": row_id(original.variant, base), "backend": base.backend, "precision": base.precision,
                "latency_ms_p50": base.latency_ms.p50, "accuracy": base_value, "accuracy_metric": metric,
                "eval_samples": base.eval_samples}
    return base, metric, base_value, baseline


def derive(measured: list[Measured], budget: float, model: str, target: str, cmd: dict[str, object],
           metric: str | None = None
           ) -> tuple[str, dict[str, object], list[dict[str, object]], list[str], dict[str, object] | None]:
    """(metric, baseline, every row as a variant with its drop and speedup, the latency x drop frontier, the
    recommended variant with its compile command or None). ``metric``: the one the drop is measured in
    (default: top1 with labels, else agreement)."""
    original = next(m for m in measured if m.variant.is_original)
    base, metric, base_value, baseline = _baseline(original, metric)
    sign = 1.0
    if metric not in ("top1", "agreement"):
        from ..evaluation import get_metric

        sign = 1.0 if get_metric(metric).higher_is_better else -1.0
    variants: list[dict[str, object]] = []
    for m in measured:
        for r in m.rows:
            value = metric_value(r, metric) if r.status == "ok" else None
            # rounded: percentages of a finite set differ by FP noise (96.9 - 95.9), which must not decide the budget
            drop = None if value is None else round(sign * (base_value - value), 9)
            v = r.model_dump(mode="json")
            v.update({
                "id": row_id(m.variant, r), **m.variant.to_json(),
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


def score(result: SearchResult, variant: GraphVariant) -> float:
    """What the strategy maximises: the best speedup among ``variant``'s rows within the accuracy budget, 0 if none."""
    ids = {row_id(variant, r) for m in result.measured if m.variant == variant for r in m.rows}
    return max((v["speedup"] for v in result.variants if v["id"] in ids and v["within_accuracy_budget"]
                and v["speedup"] is not None), default=0.0)
