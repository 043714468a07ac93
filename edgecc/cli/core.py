"""The foundation commands: targets, doctor, inspect, compile, profile, compare, zoo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .. import api
from ..atomic import write_atomic
from ..errors import EXIT_BUG, EXIT_VERIFICATION
from . import int8_options as q
from .options import DataOptions, data_options, graph_steps
from .common import (
    DeviceOpt, HtmlOpt, JsonOpt, LayerRunsOpt, MemoryLimitOpt, MetricOpt, MinTimeOpt, ModelArg, RunsOpt, ShapeOpt, TargetOpt,
    TargetsFileOpt, WarmupOpt, app, err, gib_bytes, handle_errors, out, parse_options, profile_settings, split_list,
    write_json, zoo_app,
)


@app.command()
@handle_errors
def targets(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    targets_file: TargetsFileOpt = None,
) -> None:
    """List the named targets, one line each."""
    from rich.table import Table

    from ..targets import load_registry

    reg = load_registry(targets_file)
    all_targets = reg.all()
    if json_out:
        write_json(Path("-"), [t.model_dump(mode="json") for t in all_targets])
        return
    t = Table(title="targets")
    for col in ("name", "kind", "backends", "peak GFLOP/s", "description"):
        t.add_column(col)
    for tg in all_targets:
        t.add_row(tg.name, tg.kind, ",".join(tg.backends()), f"{tg.peak_fp32_gflops:g}", tg.description)
    out.print(t)


@app.command()
@handle_errors
def doctor(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    measure_peak: Annotated[bool, typer.Option("--measure-peak", help="measure this host's FP32 GEMM peak again; the best measurement so far is kept")] = False,
) -> None:
    """Show which backends are installed (versions) and what this host is; how to install what is missing."""
    from ..backends import get_backend, registry
    from ..targets import detect_host
    from ..targets.host import measure_peak_again

    if measure_peak:
        measure_peak_again()
    host = detect_host()
    rows = []
    for name in registry.names():
        be = get_backend(name)
        a = be.availability()
        rows.append({"backend": name, "available": a.available, "versions": a.versions, "reason": a.reason,
                     "install": None if a.available else be.install_command})
    if json_out:
        write_json(Path("-"), {"host": host.model_dump(mode="json"), "backends": rows})
        return
    out.print(f"[bold]host[/]: {escape(host.cpu)}, {host.cores} cores, {host.arch}, {host.memory_gib:g} GiB")
    flags = set(host.isa)
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "neon", "dotprod"]
    shown = [f for f in wanted if f in flags or (host.arch == "x86_64" and not f in ("neon", "dotprod"))]
    out.print("  cpu flags: " + "  ".join(f"{f} {'yes' if f in flags else 'no'}" for f in shown))
    out.print(f"  peak FP32 {host.peak_fp32_gflops:g} GFLOP/s ({host.peak_source})", markup=False)
    for r in rows:
        if r["available"]:
            versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
            out.print(f"[green]ok[/]          {r['backend']:<12} {versions}", highlight=False)
        else:
            out.print(f"[yellow]missing[/]     {r['backend']:<12} {escape(r['reason'])}; install: {escape(r['install'])}", highlight=False)


@app.command()
@handle_errors
def inspect(
    model: ModelArg,
    input_shape: ShapeOpt = None,
    json_out: JsonOpt = None,
    backend: Annotated[Optional[str], typer.Option("--backend", "-b", help="comma-separated; default: every backend")] = None,
) -> None:
    """Inputs/outputs, opsets, op histogram, parameters, FLOPs, and which backends support every op."""
    prepared, analysis, support = api.inspect(model, input_shapes=input_shape, backends=split_list(backend))
    data = analysis.to_json() | {"model": prepared.source, "sha256": prepared.sha256, "backends": [
        {"backend": s.backend, "available": s.available, "reason": s.reason, "unsupported_ops": s.unsupported_ops,
         "estimate": s.estimate}
        for s in support
    ]}
    write_json(json_out, data)
    if json_out is not None and str(json_out) == "-":
        return
    out.print(f"[bold]{escape(prepared.source)}[/]  sha256 {prepared.sha256[:16]}...  ir {analysis.ir_version}  "
              f"opsets {', '.join(f'{d} {v}' for d, v in analysis.opsets.items())}", highlight=False)
    for kind, specs in (("input", prepared.inputs), ("output", prepared.outputs)):
        for s in specs:
            out.print(f"  {kind:<6} {s.name}: {s.dtype} {list(s.shape)}", highlight=False, markup=False)
    out.print(f"  nodes {analysis.nodes}, parameters {analysis.params:,} ({analysis.param_bytes / 2**20:.1f} MiB), "
              f"{analysis.flops / 1e9:.3f} GFLOPs per inference", highlight=False, markup=False)
    out.print("  ops: " + ", ".join(f"{op} {n}" for op, n in analysis.op_histogram.items()), highlight=False, markup=False)
    for s in support:
        if not s.available:
            out.print(f"  [yellow]{s.backend}[/]: unavailable ({escape(s.reason)})", highlight=False)
            if s.estimate is not None:
                verdict = f"cannot run {', '.join(s.unsupported_ops)}" if s.unsupported_ops else "supports every op"
                out.print(f"    ESTIMATE: {verdict} ({s.estimate})", highlight=False, markup=False)
        elif s.unsupported_ops:
            out.print(f"  [red]{s.backend}[/]: cannot run {escape(', '.join(s.unsupported_ops))}", highlight=False)
        else:
            out.print(f"  [green]{s.backend}[/]: supports every op", highlight=False)


@app.command("compile")
@handle_errors
@data_options()
@graph_steps()
def compile_cmd(
    model: ModelArg,
    target: TargetOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="artifact directory to write")],
    backend: Annotated[Optional[str], typer.Option("--backend", "-b", help="default: the target's preferred backend")] = None,
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16, fp16 or int8 (what the backend can do)")] = "fp32",
    input_shape: ShapeOpt = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", help="backend option KEY=VALUE (repeatable)")] = None,
    targets_file: TargetsFileOpt = None,
    tuned: Annotated[bool, typer.Option("--tuned", help="tvm: apply the tuning database (edgecc tune); same as --option tuned=true")] = False,
    data: DataOptions = None,
    steps: dict[str, object] = None,
) -> None:
    """Compile MODEL for TARGET into an artifact directory (backend files + manifest.json)."""
    spec = data.calibration_spec
    if precision == "int8":
        q.warn_if_random(spec)
    options = parse_options(option) | ({"tuned": True} if tuned else {})
    with q.random_warning_printed(), err.status("compiling", spinner="dots") as status:
        artifact = api.compile(
            model, target, output, backend=backend, precision=precision, input_shapes=input_shape,
            options=options, targets_file=targets_file, calibration=spec, quantize=data.quantize,
            progress=status.update, **steps,
        )
    m = artifact.manifest
    out.print(f"compiled {m.model.source} for {m.target.name} with {m.backend} {m.precision} in {m.compile_s:.2f} s "
              f"-> {artifact.path} ({artifact.total_bytes / 2**20:.1f} MiB)", highlight=False, markup=False)


@app.command()
@handle_errors
def profile(
    artifact_dir: Annotated[Path, typer.Argument(help="an artifact directory made by edgecc compile")],
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    min_time: MinTimeOpt = 1.0,
    layer_runs: LayerRunsOpt = 10,
    inputs: Annotated[Optional[Path], typer.Option("--inputs", help=".npz with one array per input (not verified)")] = None,
    memory_limit: MemoryLimitOpt = None,
    json_out: JsonOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Run a compiled artifact again (no recompiling): latency, per-layer times, outputs vs the reference."""
    row = api.profile(
        artifact_dir, profile_settings(warmup, runs, min_time, layer_runs), inputs=str(inputs) if inputs else None,
        memory_limit=gib_bytes(memory_limit), device=device,
    )
    write_json(json_out, row.model_dump(mode="json", exclude={"speedup"}))
    if json_out is None or str(json_out) != "-":
        from ..report.table import layer_table, profile_table

        out.print(profile_table(row))
        if row.layers:
            out.print(layer_table(row))
    if row.status != "ok":
        err.print(f"[bold red]error:[/] {escape(row.error or '')}", highlight=False)
        raise typer.Exit(EXIT_VERIFICATION if row.verified is False else EXIT_BUG)


@app.command()
@handle_errors
@data_options()
@graph_steps()
def compare(
    model: ModelArg,
    target: TargetOpt,
    backends: Annotated[Optional[str], typer.Option("--backends", help="comma-separated; default: every backend the target lists")] = None,
    precisions: Annotated[Optional[str], typer.Option("--precisions", help="comma-separated; default: what each backend can do")] = None,
    input_shape: ShapeOpt = None,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    min_time: MinTimeOpt = 1.0,
    layer_runs: LayerRunsOpt = 0,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds allowed per row (compile + profile)")] = 1800,
    memory_limit: MemoryLimitOpt = None,
    artifacts_dir: Annotated[Optional[Path], typer.Option("--artifacts-dir", help="keep each row's artifact here")] = None,
    json_out: JsonOpt = None,
    html_out: HtmlOpt = None,
    targets_file: TargetsFileOpt = None,
    device: DeviceOpt = None,
    eval_data: Annotated[Optional[str], typer.Option("--eval", help="accuracy columns on this data: an .npz with inputs and 'labels' (or images: agreement only)")] = None,
    max_accuracy_drop: Annotated[Optional[float], typer.Option("--max-accuracy-drop", help="flag rows losing more than this many points of accuracy vs the baseline; INT8 QDQ rows keep in float the fewest layers that hold it (mixed precision; default metric or top1)")] = None,
    metric: MetricOpt = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", help="BACKEND.KEY=VALUE: an option of one backend (repeatable)")] = None,
    vary: q.VaryOpt = None,
    data: DataOptions = None,
    steps: dict[str, object] = None,
) -> None:
    """Compile and profile MODEL with each backend x precision on TARGET, against the onnxruntime FP32 baseline."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..remote.device import LocalDevice, parse_device
    from ..remote.run import COMPARE_DEVICES, compare_remote

    quiet = json_out is not None and str(json_out) == "-"
    dev = parse_device(device, COMPARE_DEVICES)
    if not isinstance(dev, LocalDevice):
        with err.status(f"comparing on {dev.where}", spinner="dots") if not quiet else _nothing():
            report = compare_remote(
                dev, model, target, backends=split_list(backends), precisions=split_list(precisions),
                input_shapes=input_shape, settings=profile_settings(warmup, runs, min_time, layer_runs), timeout_s=timeout,
                artifacts_dir=artifacts_dir, targets_file=targets_file, with_options=bool(option or vary),
            )
        _show_compare(report, json_out, html_out, quiet)
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err, disable=quiet,
                  transient=True) as progress:
        task = progress.add_task("comparing", total=None)

        def on_row(row, i, n):
            lat = f"{row.latency_ms.p50:.2f} ms" if row.latency_ms else row.status
            progress.update(task, description=f"{i + 1}/{n} done; last: {row.name} {row.precision} {lat}")

        cal_spec = data.calibration_spec
        q.warn_if_random(cal_spec)
        with q.random_warning_printed():
            report = api.compare(
                model, target, backends=split_list(backends), precisions=split_list(precisions), input_shapes=input_shape,
                settings=profile_settings(warmup, runs, min_time, layer_runs), timeout_s=timeout,
                memory_limit=gib_bytes(memory_limit), artifacts_dir=artifacts_dir,
                targets_file=targets_file, on_row=on_row, progress=lambda text: progress.update(task, description=text),
                calibration=cal_spec, quantize=data.quantize,
                eval_data=data.spec(eval_data), max_accuracy_drop=max_accuracy_drop, metric=metric, options=q.backend_options(option),
                vary=q.vary_options(vary), **steps,
            )
    _show_compare(report, json_out, html_out, quiet)


def _show_compare(report, json_out, html_out, quiet: bool) -> None:  # noqa: ANN001
    from ..report.table import compare_table, failures

    write_json(json_out, report.model_dump(mode="json"))
    if html_out is not None:
        from ..report.html import render_compare, write_html

        write_html(html_out, render_compare(report))
    if not quiet:
        out.print(compare_table(report))
        out.print(f"measured on: {report.measured_on}", highlight=False, markup=False)
        for line in failures(report):
            err.print(f"[yellow]note:[/] {escape(line)}", highlight=False, soft_wrap=True)
        for line in q.accuracy_notes(report):
            out.print(line, highlight=False, markup=False, soft_wrap=True)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


@zoo_app.command("list")
@handle_errors
def zoo_list() -> None:
    """The bundled models."""
    from .. import zoo

    for name in zoo.names():
        e = zoo.get(name)
        shapes = " ".join(f"{k}:{','.join(map(str, v))}" for k, v in e.default_shapes.items())
        out.print(f"{name:<12} {e.task:<22} {escape(e.description)}  [dim](default {shapes})[/]", highlight=False)


@zoo_app.command("export")
@handle_errors
def zoo_export(
    name: Annotated[str, typer.Argument(help="a zoo model name")],
    output: Annotated[Path, typer.Option("-o", "--output", help=".onnx file to write")],
    seed: Annotated[int, typer.Option("--seed", help="weights seed")] = 0,
) -> None:
    """Write a bundled model to an .onnx file (dynamic dimensions kept)."""
    from .. import zoo

    model = zoo.get(name).build(seed)
    write_atomic(output, model.SerializeToString())
    out.print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB)", highlight=False, markup=False)
