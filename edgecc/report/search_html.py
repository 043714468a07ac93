"""The report of ``edgecc search``: its variants (labelled by id), the frontier of latency against accuracy drop
(and with artifact size), the recommended variant and its slowest layers, roofline position. Reuses edgecc.report.html's plots."""

from __future__ import annotations

import html
from datetime import datetime, timezone

from rich.table import Table

from .html import _CSS, _latency_plot, _layers_plot, _roofline_plot, _svg
from .schema import ResultRow


class SearchRow(ResultRow):
    """A compare row as a search variant: ``id`` is what the plots and tables show."""

    id: str


def _rows(data: dict) -> list[SearchRow]:
    return [SearchRow.model_validate(v) for v in data["variants"]]


def _drop_plot(rows: list[SearchRow], front: set[str], recommended: str | None, budget: float, metric: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        on = r.id in front
        ax.scatter(r.latency_ms.p50, r.accuracy_drop, s=80 if r.id == recommended else (55 if on else 25),
                   color="#1a7f37" if r.id == recommended else ("#cf222e" if on else "#4c72b0"), zorder=3)
        if on:
            ax.annotate(r.id, (r.latency_ms.p50, r.accuracy_drop), textcoords="offset points", xytext=(5, 4), fontsize=7)
    pts = sorted((r.latency_ms.p50, r.accuracy_drop) for r in rows if r.id in front)
    if len(pts) > 1:
        ax.step(*zip(*pts), where="post", color="#cf222e", linewidth=1, zorder=2)
    ax.axhline(budget, color="#333", linestyle=":", label=f"budget: {budget:g} points")
    ax.legend(loc="upper right")
    ax.set_xlabel("latency p50, ms")
    ax.set_ylabel(f"{'top-1 accuracy' if metric == 'top1' else 'top-1 agreement'} drop vs original, points")
    return _svg(fig)


def _size_plot(rows: list[SearchRow], front: set[str], recommended: str | None) -> str:
    """Latency against artifact size; rows within the accuracy budget in blue, over it in grey, members of
    the frontier of (latency, drop, size) labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        size = r.artifact_bytes / 2**20
        within = r.within_accuracy_budget is not False
        ax.scatter(size, r.latency_ms.p50, s=80 if r.id == recommended else (55 if r.id in front else 25), zorder=3,
                   color="#1a7f37" if r.id == recommended else ("#4c72b0" if within else "#9a9a9a"),
                   edgecolors="#cf222e" if r.id in front else "none", linewidths=1.5)
        if r.id in front:
            ax.annotate(r.id, (size, r.latency_ms.p50), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.scatter([], [], color="#4c72b0", label="within the accuracy budget")
    ax.scatter([], [], color="#9a9a9a", label="over the budget")
    ax.scatter([], [], color="white", edgecolors="#cf222e", label="frontier of latency, drop and size")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("artifact size, MiB")
    ax.set_ylabel("latency p50, ms")
    return _svg(fig)


def _cell(value, fmt: str) -> str:
    return "<td>-</td>" if value is None else f"<td>{format(value, fmt)}</td>"


def _table(rows: list[SearchRow], front: set[str], size_front: set[str], recommended: str | None) -> str:
    head = ("variant", "status", "p50 ms", "speedup", "accuracy", "drop", "within budget", "GFLOP/s", "size MiB",
            "Pareto", "Pareto with size", "note")
    out = ["<table id='variants'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        mark = " <b class='rec'>(recommended)</b>" if r.id == recommended else ""
        budget = "-" if r.within_accuracy_budget is None else ("yes" if r.within_accuracy_budget else "no")
        out.append("<tr>" + "".join([
            f'<td class="l{" pareto" if r.id in front else ""}">{html.escape(r.id)}{mark}</td>',
            f'<td class="l {r.status}">{r.status}</td>',
            _cell(r.latency_ms.p50 if r.latency_ms else None, ".3f"), _cell(r.speedup, ".2f"),
            _cell(r.accuracy, ".2f"), _cell(r.accuracy_drop, ".2f"), f"<td>{budget}</td>", _cell(r.gflops_per_s, ".1f"),
            _cell(r.artifact_bytes / 2**20 if r.artifact_bytes else None, ".2f"),
            f"<td>{'yes' if r.id in front else ''}</td>", f"<td>{'yes' if r.id in size_front else ''}</td>",
            f'<td class="l">{html.escape(r.error or "")}</td>',
        ]) + "</tr>")
    return "\n".join(out) + "</table>"


def render_search(data: dict) -> str:
    """A saved search (its JSON, as a dict) as one self-contained HTML page."""
    rows = _rows(data)
    ok = [r for r in rows if r.status == "ok" and r.latency_ms is not None]
    front = set(data["pareto"])
    rec = data.get("recommended")
    rec_id = rec["id"] if rec else None
    base = data["baseline"]
    metric = data.get("accuracy_metric", "top1")
    what = ("top-1 accuracy on the labelled evaluation set" if metric == "top1" else
            "top-1 agreement with the original model's onnxruntime FP32 outputs (no labels: this is not accuracy)")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>edgecc search: {html.escape(data['model'])} on {html.escape(data['target'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>Search: {html.escape(data['model'])} on {html.escape(data['target'])}</h1>",
        f"<p class='meta'>Measured on {html.escape(data.get('measured_on') or '?')}. Baseline: original model, "
        f"{base['backend']} {base['precision']}, p50 {base['latency_ms_p50']:.3f} ms, {metric} {base['accuracy']:.2f}% on "
        f"{html.escape(str(data.get('eval_data')))} ({base.get('eval_samples')} samples). The accuracy column is {what}. "
        f"Budget: {data['max_accuracy_drop']:g} points. Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.</p>",
    ]
    if rec:
        parts.append(f"<p id='recommended'>Recommended: <b>{html.escape(rec_id)}</b>, p50 {rec['latency_ms']['p50']:.3f} ms, "
                     f"{rec['speedup']:.2f}x the baseline, drop {rec['accuracy_drop']:.2f} points.<br>"
                     f"Rebuild it with: <code>{html.escape(rec['command'])}</code></p>")
    else:
        parts.append(f"<p id='recommended'>No measured variant stays within {data['max_accuracy_drop']:g} points: nothing recommended.</p>")
    for m in data.get("messages", []):
        parts.append(f"<p class='meta note'>{html.escape(m)}</p>")
    size_front = set(data.get("pareto_with_size", []))
    parts += ["<h2>Variants</h2>", _table(rows, front, size_front, rec_id)]
    if ok:
        parts += ["<h2>Latency</h2>", f"<figure id='latency'>{_latency_plot(ok, base['latency_ms_p50'])}</figure>"]
        measured = [r for r in ok if r.accuracy_drop is not None]
        if measured:
            parts += ["<h2>Latency against accuracy drop (Pareto frontier in red, recommended in green)</h2>",
                      f"<figure id='pareto'>{_drop_plot(measured, front, rec_id, data['max_accuracy_drop'], metric)}</figure>"]
        sized = [r for r in ok if r.artifact_bytes]
        if sized:
            parts += ["<h2>Latency against artifact size (frontier of latency, accuracy drop and size ringed)</h2>",
                      f"<figure id='size'>{_size_plot(sized, size_front, rec_id)}</figure>"]
        if any(r.gflops_per_s for r in ok):
            parts += ["<h2>Roofline position</h2>", f"<figure id='roofline'>{_roofline_plot(ok, data.get('peak_gflops'))}</figure>"]
        winner = next((r for r in ok if r.id == rec_id), None)
        if winner is not None and winner.layers:
            parts += [f"<h2>Slowest layers of the recommended variant ({html.escape(winner.id)})</h2>",
                      f"<figure id='layers'>{_layers_plot(winner)}</figure>"]
    versions = ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in sorted(data.get("versions", {}).items()))
    parts += ["<h2>Versions</h2>", f"<p class='meta'>{versions}</p>", "</body></html>"]
    return "\n".join(parts)


def search_table(data: dict) -> Table:
    """The variants as a terminal table, fastest first; Pareto members and the recommended one marked."""
    front = set(data["pareto"])
    rec_id = (data.get("recommended") or {}).get("id")
    t = Table(title=f"search: {data['model']} on {data['target']} ({data.get('accuracy_metric')} drop budget "
                    f"{data['max_accuracy_drop']:g} points)")
    for h in ("variant", "status", "p50 ms", "speedup", "accuracy", "drop", "budget", "pareto"):
        t.add_column(h, justify="left" if h in ("variant", "status") else "right")

    def key(v):
        return (v["latency_ms"] is None, v["latency_ms"]["p50"] if v["latency_ms"] else 0.0)

    for v in sorted(data["variants"], key=key):
        f = lambda x, s: "-" if x is None else format(x, s)  # noqa: E731
        t.add_row(v["id"] + (" *" if v["id"] == rec_id else ""), v["status"] if not v.get("error") else f"{v['status']}: {v['error'][:60]}",
                  f(v["latency_ms"]["p50"] if v["latency_ms"] else None, ".3f"), f(v["speedup"], ".2f"),
                  f(v["accuracy"], ".2f"), f(v["accuracy_drop"], ".2f"),
                  "-" if v["within_accuracy_budget"] is None else ("ok" if v["within_accuracy_budget"] else "over"),
                  "yes" if v["id"] in front else "")
    return t
