"""A self-contained HTML report: inline SVG plots (matplotlib), no script and nothing fetched at view time."""

from __future__ import annotations

import html
import io
from datetime import datetime, timezone

from ..atomic import write_atomic
from .pareto import pareto_front
from .schema import CompareReport, ResultRow

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.3em .7em;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child,td.l{text-align:left}.ok{color:#1a7f37}.failed{color:#cf222e}.unavailable{color:#9a6700}
.meta{color:#555;font-size:.9em}figure{margin:1em 0}.pareto{font-weight:bold}
"""


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _label(r: ResultRow) -> str:
    return getattr(r, "id", None) or f"{r.name} {r.precision}"  # search rows carry their variant id


def _error_axis(r: ResultRow) -> float:
    """How far a row's outputs are from the reference: 1 - cosine (0 is exact), rounded to 1e-9 so
    that FP32 rounding noise (~1e-14) does not decide the frontier."""
    return round(max(0.0, 1.0 - (r.cosine if r.cosine is not None else 0.0)), 9)


def _latency_plot(rows: list[ResultRow], baseline_ms: float | None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    names = [_label(r) for r in rows]
    ax.barh(names, [r.latency_ms.p50 for r in rows], color="#4c72b0")
    ax.errorbar([r.latency_ms.p50 for r in rows], names,
                xerr=[[0] * len(rows), [r.latency_ms.p90 - r.latency_ms.p50 for r in rows]], fmt="none", ecolor="#333", capsize=3)
    if baseline_ms:
        ax.axvline(baseline_ms, color="#cf222e", linestyle="--", label=f"baseline p50 {baseline_ms:.2f} ms")
        ax.legend(loc="lower right")
    ax.invert_yaxis()
    ax.set_xlabel("latency, ms (bar: p50, whisker: p90)")
    return _svg(fig)


def _pareto_plot(rows: list[ResultRow], front: set[str]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        on = _label(r) in front
        ax.scatter(r.latency_ms.p50, _error_axis(r), s=60 if on else 30, color="#cf222e" if on else "#4c72b0", zorder=3)
        ax.annotate(_label(r), (r.latency_ms.p50, _error_axis(r)), textcoords="offset points", xytext=(5, 5), fontsize=8)
    pts = sorted((r.latency_ms.p50, _error_axis(r)) for r in rows if _label(r) in front)
    if len(pts) > 1:
        ax.plot(*zip(*pts), color="#cf222e", linewidth=1, zorder=2)
    ax.set_xlabel("latency p50, ms")
    ax.set_ylabel("output error: 1 - cosine vs reference")
    ax.set_yscale("symlog", linthresh=1e-6)
    return _svg(fig)


def _roofline_plot(rows: list[ResultRow], peak: float | None) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    names = [_label(r) for r in rows]
    ax.barh(names, [r.gflops_per_s or 0 for r in rows], color="#55a868")
    if peak:
        ax.axvline(peak, color="#333", linestyle=":", label=f"target peak FP32 {peak:g} GFLOP/s")
        ax.legend(loc="lower right")
    ax.invert_yaxis()
    ax.set_xlabel("achieved GFLOP/s (model FLOPs / p50)")
    return _svg(fig)


def _layers_plot(row: ResultRow, top: int = 15) -> str:
    import matplotlib.pyplot as plt

    layers = row.layers[:top]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(layers) + 1.2))
    ax.barh([f"{l.name} ({l.op_type})" for l in layers], [l.time_ms for l in layers], color="#8172b2")
    ax.invert_yaxis()
    ax.set_xlabel("ms per run")
    return _svg(fig)


def _table(rows: list[ResultRow], front: set[str]) -> str:
    head = ("variant", "status", "p50 ms", "p90 ms", "speedup", "GFLOP/s", "of peak", "cosine", "max abs err", "note")
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        lat = r.latency_ms
        cells = [
            f'<td class="l{" pareto" if _label(r) in front else ""}">{html.escape(_label(r))}</td>',
            f'<td class="l {r.status}">{r.status}</td>',
            f"<td>{lat.p50:.3f}</td><td>{lat.p90:.3f}</td>" if lat else "<td>-</td><td>-</td>",
            f"<td>{r.speedup:.2f}x</td>" if r.speedup else "<td>-</td>",
            f"<td>{r.gflops_per_s:.1f}</td>" if r.gflops_per_s else "<td>-</td>",
            f"<td>{100 * r.roofline_fraction:.0f}%</td>" if r.roofline_fraction else "<td>-</td>",
            f"<td>{r.cosine:.6f}</td>" if r.cosine is not None else "<td>-</td>",
            f"<td>{r.max_abs_error:.2e}</td>" if r.max_abs_error is not None else "<td>-</td>",
            f'<td class="l">{html.escape(r.error or "")}</td>',
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def write_html(path, text: str) -> None:
    """Write the report to ``path`` atomically."""
    write_atomic(path, text)


def render_compare(report: CompareReport) -> str:
    """The whole report as one HTML string."""
    peak_gflops = report.peak_gflops
    ok = [r for r in report.results if r.status == "ok" and r.latency_ms is not None]
    base = report.results[0].latency_ms.p50 if report.results and report.results[0].latency_ms else None
    front = set(pareto_front([(_label(r), (r.latency_ms.p50, _error_axis(r))) for r in ok]))
    fastest = min(ok, key=lambda r: r.latency_ms.p50, default=None)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>edgecc: {html.escape(report.model)} on {html.escape(report.target)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.model)} on {html.escape(report.target)}</h1>",
        f"<p class='meta'>Measured on {html.escape(report.measured_on)}; baseline {report.baseline.backend} "
        f"{report.baseline.precision} measured in the same run. Written "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.</p>",
    ]
    if fastest is not None:
        parts.append(
            f"<p id='fastest'>Fastest: <b>{html.escape(_label(fastest))}</b>, p50 {fastest.latency_ms.p50:.3f} ms"
            + (f", {fastest.speedup:.2f}x the baseline" if fastest.speedup else "") + ".</p>"
        )
    parts += ["<h2>Variants</h2>", _table(report.results, front)]
    if ok:
        parts += ["<h2>Latency</h2>", f"<figure id='latency'>{_latency_plot(ok, base)}</figure>"]
        parts += ["<h2>Latency against output error (Pareto frontier in red)</h2>", f"<figure id='pareto'>{_pareto_plot(ok, front)}</figure>"]
        if any(r.gflops_per_s for r in ok):
            parts += ["<h2>Roofline position</h2>", f"<figure id='roofline'>{_roofline_plot(ok, peak_gflops)}</figure>"]
        if fastest is not None and fastest.layers:
            parts += [f"<h2>Slowest layers of the fastest variant ({html.escape(_label(fastest))})</h2>",
                      f"<figure id='layers'>{_layers_plot(fastest)}</figure>"]
    versions = ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in sorted(report.versions.items()))
    parts += ["<h2>Versions</h2>", f"<p class='meta'>{versions}</p>", "</body></html>"]
    return "\n".join(parts)
