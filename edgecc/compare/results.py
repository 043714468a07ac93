"""Rows paired with the baseline measured in the same run: speedups, accuracy drops, the report."""

from __future__ import annotations

from ..backends import get_backend
from ..report.schema import Baseline, CompareReport, ResultRow
from .request import CompareRequest


def with_speedups(results: list[ResultRow]) -> list[ResultRow]:
    """Each measured row's speedup: the baseline's (first row's) p50 over its own."""
    base = results[0]
    if base.latency_ms is None:
        return results
    return [r.model_copy(update={"speedup": base.latency_ms.p50 / r.latency_ms.p50}) if r.latency_ms else r
            for r in results]


def metric_value(row: ResultRow, metric: str) -> float | None:
    """``row``'s value of ``metric`` (top1 and agreement have fields of their own)."""
    if metric == "top1":
        return row.accuracy
    if metric == "agreement":
        return row.agreement
    return (row.metrics or {}).get(metric)


def accuracy_drops(results: list[ResultRow], budget: float | None, metric: str | None = None) -> list[ResultRow]:
    """Each row's drop from the baseline (first row): in ``metric`` when given (the sign follows its
    higher_is_better), else in top-1 accuracy with labels, else in agreement."""
    base = results[0]
    key = metric or ("top1" if base.accuracy is not None else "agreement")
    sign = 1.0
    if metric is not None:
        from ..evaluation import get_metric

        sign = 1.0 if get_metric(metric).higher_is_better else -1.0
    ref = metric_value(base, key)
    out = []
    for r in results:
        got = metric_value(r, key)
        if ref is None or got is None:
            out.append(r)
            continue
        drop = sign * (ref - got)
        out.append(r.model_copy(update={
            "accuracy_drop": drop, "within_accuracy_budget": None if budget is None else drop <= budget,
        }))
    return out


def build_report(request: CompareRequest, source: str, flops: int, results: list[ResultRow]) -> CompareReport:
    """The report of ``request``'s rows: speedups, accuracy drops when evaluated, versions and where it ran."""
    from ..artifact import common_versions
    from ..targets import detect_host

    results = with_speedups(results)
    if request.eval_data is not None:
        results = accuracy_drops(results, request.max_accuracy_drop, request.metric)
    versions = common_versions()
    for name in {r.backend for r in results}:
        versions |= get_backend(name).availability().versions
    cal, ev = request.calibration, request.eval_data
    return CompareReport(
        model=source, target=request.target.name, baseline=Baseline(), results=results,
        measured_on=detect_host().description, versions=versions, flops=flops, peak_gflops=request.target.peak_fp32_gflops,
        calibration=cal.describe() if cal is not None else None, eval_data=ev.describe() if ev is not None else None,
        max_accuracy_drop=request.max_accuracy_drop, accuracy_metric=request.metric,
    )
