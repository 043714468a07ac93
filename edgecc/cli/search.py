"""edgecc search: the fastest deployment within an accuracy budget (edgecc.search does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..errors import BadInputError
from . import int8_options as q
from .options import DataOptions, data_options, graph_step_spaces
from .common import (
    HtmlOpt, LayerRunsOpt, MetricOpt, MinTimeOpt, ModelArg, RunsOpt, ShapeOpt, TargetOpt, TargetsFileOpt, WarmupOpt, app, err,
    handle_errors, out, profile_settings, split_list, write_json,
)


@app.command("search")
@handle_errors
@data_options()
@graph_step_spaces()
def search_cmd(
    model: ModelArg,
    target: TargetOpt,
    eval_data: Annotated[str, typer.Option("--eval", help="accuracy is measured on this data: an .npz with inputs and 'labels' (top-1), or images (top-1 agreement with the original model)")],
    backends: Annotated[Optional[str], typer.Option("--backends", help="comma-separated; default: every backend the target lists")] = None,
    precisions: Annotated[Optional[str], typer.Option("--precisions", help="comma-separated; default: what each backend can do")] = None,
    max_accuracy_drop: Annotated[float, typer.Option("--max-accuracy-drop", help="points of accuracy a variant may lose against the original model's onnxruntime FP32")] = 1.0,
    metric: MetricOpt = None,
    time_budget: Annotated[Optional[str], typer.Option("--time-budget", help="stop after this long with what was measured: 30m, 90s, 1h (default: no limit; the baseline always runs)")] = None,
    input_shape: ShapeOpt = None,
    targets_file: TargetsFileOpt = None,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    min_time: MinTimeOpt = 1.0,
    layer_runs: LayerRunsOpt = 5,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds allowed per row (compile + profile)")] = 1800,
    option: Annotated[Optional[list[str]], typer.Option("--option", help="BACKEND.KEY=VALUE: an option of one backend (repeatable)")] = None,
    vary: q.VaryOpt = None,
    strategy: Annotated[str, typer.Option("--strategy", help="grid: every prune x low-rank pair; optuna: up to --max-variants pairs picked by Optuna's TPE sampler")] = "grid",
    max_variants: Annotated[int, typer.Option("--max-variants", help="graph variants --strategy optuna measures at most")] = 12,
    html_out: HtmlOpt = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the result here; an earlier run's file of the same model/target is resumed: variants in it are not measured again")] = None,
    data: DataOptions = None,
    spaces: dict[str, object] = None,
) -> None:
    """Find the fastest variant (backend x precision x backend options x pruning x low-rank) of MODEL on TARGET within an accuracy budget."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..search import parse_time_budget, search

    # Every flag is checked before anything runs (the graph steps' lists were parsed into ``spaces``).
    budget_s = parse_time_budget(time_budget) if time_budget is not None else None
    options, varied = q.backend_options(option), q.vary_options(vary)
    if max_accuracy_drop < 0:
        raise BadInputError("--max-accuracy-drop must be >= 0 (percentage points)")
    quiet = json_out is not None and str(json_out) == "-"
    cal_spec = data.calibration_spec
    q.warn_if_random(cal_spec)
    settings = profile_settings(warmup, runs, min_time, layer_runs)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} graph variants"),
                  TimeElapsedColumn(), console=err, disable=quiet, transient=True) as progress:
        task = progress.add_task("measuring the original model", total=None)

        def on_variant(result, measured, done, total, seconds_left):
            best = result.recommended if result is not None else None
            best_text = (f"best so far {best['id']} {best['latency_ms']['p50']:.2f} ms ({best['speedup']:.2f}x)"
                         if best else "nothing within budget yet")
            left = "" if seconds_left is None else f"; {max(0.0, seconds_left):.0f} s left"
            progress.update(task, completed=done, total=total, description=f"{best_text}{left}")
            if json_out is not None and not quiet:
                write_json(json_out, result.to_json())  # a checkpoint: an interrupted search resumes from here

        with q.random_warning_printed():
            result = search(
                model, target, eval_data=data.spec(eval_data), backends=split_list(backends),
                precisions=split_list(precisions), spaces=spaces,
                max_accuracy_drop=max_accuracy_drop, metric=metric, time_budget_s=budget_s, calibration=cal_spec,
                quantize=data.quantize, input_shapes=input_shape,
                targets_file=targets_file, settings=settings, timeout_s=timeout, options=options, vary=varied,
                strategy=strategy, max_variants=max_variants,
                resume=json_out, on_variant=on_variant,
            )
    found = result.to_json()
    write_json(json_out, found)
    if html_out is not None:
        from ..report.html import write_html
        from ..report.search_html import render_search

        write_html(html_out, render_search(found))
    if quiet:
        return
    from ..report.search_html import search_table

    out.print(search_table(found))
    for line in result.messages:
        err.print(f"[yellow]note:[/] {escape(line)}", highlight=False, soft_wrap=True)
    rec = result.recommended
    if rec is not None:
        out.print(f"recommended: {rec['id']}: p50 {rec['latency_ms']['p50']:.3f} ms, {rec['speedup']:.2f}x the baseline, "
                  f"{result.metric} drop {rec['accuracy_drop']:.2f} points (budget {max_accuracy_drop:g})",
                  highlight=False, markup=False)
        out.print(f"rebuild it with: {rec['command']}", highlight=False, markup=False, soft_wrap=True)
    for path in (json_out, html_out):
        if path is not None and str(path) != "-":
            out.print(f"wrote {path}", highlight=False, markup=False)
