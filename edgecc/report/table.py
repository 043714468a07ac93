"""Rich tables for people: the comparison, one profile row, the per-layer breakdown."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .schema import CompareReport, ResultRow

_STATUS_STYLE = {"ok": "green", "failed": "red", "unavailable": "yellow"}


def _ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.2f}")


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def compare_table(report: CompareReport) -> Table:
    t = Table(title=f"{report.model} on {report.target} (baseline: {report.baseline.backend} {report.baseline.precision})")
    columns = [("backend", "left"), ("precision", "left"), ("status", "left"), ("p50 ms", "right"),
               ("p90 ms", "right"), ("speedup", "right"), ("GFLOP/s", "right"), ("cosine", "right"),
               ("max abs err", "right"), ("compile s", "right"), ("size MiB", "right")]
    accuracy = _accuracy_columns(report)
    for col, justify in columns + [(name, "right") for name, _ in accuracy]:
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in report.results:
        t.add_row(*_row_cells(r), *(cell(r) for _, cell in accuracy))
    return t


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _accuracy_columns(report: CompareReport) -> list:
    """(header, cell function) for the accuracy columns that some row has."""
    cols: list = []
    rows = report.results
    if any(r.accuracy is not None for r in rows):
        cols.append(("top-1 %", lambda r: _pct(r.accuracy)))
    if any(r.agreement is not None for r in rows):
        cols.append(("agree %", lambda r: _pct(r.agreement)))
    if any(r.psnr_db is not None for r in rows):
        cols.append(("PSNR dB", lambda r: _pct(r.psnr_db)))
    metric = report.accuracy_metric
    shown = {"top1", "agreement", "psnr", None}
    if metric not in shown and any(metric in (r.metrics or {}) for r in rows):
        cols.append((metric.rpartition(":")[2], lambda r: "-" if metric not in (r.metrics or {}) else f"{r.metrics[metric]:.4g}"))
    if any(r.accuracy_drop is not None for r in rows):
        def drop(r: ResultRow) -> str:
            if r.accuracy_drop is None:
                return "-"
            text = f"{r.accuracy_drop:+.2f}"
            return f"[red]{text} over[/]" if r.within_accuracy_budget is False else text

        cols.append(("drop pts" if metric in ("top1", "top5", "agreement", None) else "drop", drop))
    return cols


def _row_cells(r: ResultRow) -> list[str]:
    lat = r.latency_ms
    return [
        r.name, r.precision, f"[{_STATUS_STYLE[r.status]}]{r.status}[/]",
        _ms(lat.p50 if lat else None), _ms(lat.p90 if lat else None),
        "-" if r.speedup is None else f"{r.speedup:.2f}x",
        "-" if r.gflops_per_s is None else f"{r.gflops_per_s:.1f}",
        "-" if r.cosine is None else f"{r.cosine:.6f}",
        "-" if r.max_abs_error is None else f"{r.max_abs_error:.2e}",
        "-" if r.compile_s is None else f"{r.compile_s:.2f}", _mib(r.artifact_bytes),
    ]


def failures(report: CompareReport) -> list[str]:
    return [f"{r.name} {r.precision}: {r.error}" for r in report.results if r.status != "ok" and r.error]


def profile_table(row: ResultRow) -> Table:
    t = Table(title=f"{row.backend} {row.precision}: {row.status}", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    lat = row.latency_ms
    if lat is not None:
        for key in ("p50", "p90", "p99", "mean", "std", "min"):
            t.add_row(f"latency {key} (ms)", _ms(getattr(lat, key)))
    if row.throughput_per_s is not None:
        t.add_row("throughput (samples/s)", f"{row.throughput_per_s:.1f}")
    if row.gflops_per_s is not None:
        t.add_row("achieved GFLOP/s", f"{row.gflops_per_s:.1f}")
    t.add_row("runs", str(row.runs or "-"))
    t.add_row("peak memory (MiB)", _mib(row.peak_memory_bytes))
    if row.cosine is not None:
        t.add_row("cosine vs reference", f"{row.cosine:.6f}")
        t.add_row("max abs error", f"{row.max_abs_error:.3e}")
        t.add_row("verified", str(row.verified))
    return t


def layer_table(row: ResultRow, top: int = 10) -> Table:
    total = sum(l.time_ms for l in row.layers) or 1.0
    t = Table(title=f"slowest layers ({len(row.layers)} profiled)")
    t.add_column("layer")
    t.add_column("op")
    t.add_column("ms", justify="right")
    t.add_column("share", justify="right")
    for l in row.layers[:top]:
        t.add_row(escape(l.name), escape(l.op_type), f"{l.time_ms:.3f}", f"{100 * l.time_ms / total:.1f}%")
    return t
