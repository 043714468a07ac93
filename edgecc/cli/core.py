"""The foundation commands: targets, doctor, inspect, compile, profile, compare, zoo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .. import api
from ..errors import EXIT_BUG, EXIT_VERIFICATION
from .common import (
    JsonOpt, ModelArg, ShapeOpt, TargetOpt, TargetsFileOpt, parse_options, split_list, write_json, app, err,
    handle_errors, out, zoo_app,
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
def doctor(json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Show which backends are installed (versions) and what this host is; how to install what is missing."""
    from ..backends import get_backend, registry
    from ..targets import detect_host

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
) -> None:
    """Inputs/outputs, opsets, op histogram, parameters, FLOPs, and which backends support every op."""
    prepared, analysis, support = api.inspect(model, input_shapes=input_shape)
    data = analysis.to_json() | {"model": prepared.source, "sha256": prepared.sha256, "backends": [
        {"backend": s.backend, "available": s.available, "reason": s.reason, "unsupported_ops": s.unsupported_ops}
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
        elif s.unsupported_ops:
            out.print(f"  [red]{s.backend}[/]: cannot run {escape(', '.join(s.unsupported_ops))}", highlight=False)
        else:
            out.print(f"  [green]{s.backend}[/]: supports every op", highlight=False)


@app.command("compile")
@handle_errors
def compile_cmd(
    model: ModelArg,
    target: TargetOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="artifact directory to write")],
    backend: Annotated[Optional[str], typer.Option("--backend", "-b", help="default: the target's preferred backend")] = None,
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16 or fp16 (what the backend can do)")] = "fp32",
    input_shape: ShapeOpt = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", help="backend option KEY=VALUE (repeatable)")] = None,
    targets_file: TargetsFileOpt = None,
    tuned: Annotated[bool, typer.Option("--tuned", help="tvm: apply the tuning database (edgecc tune); same as --option tuned=true")] = False,
) -> None:
    """Compile MODEL for TARGET into an artifact directory (backend files + manifest.json)."""
    options = parse_options(option) | ({"tuned": True} if tuned else {})
    artifact = api.compile(
        model, target, output, backend=backend, precision=precision, input_shapes=input_shape,
        options=options, targets_file=targets_file,
    )
    m = artifact.manifest
    out.print(f"compiled {m.model.source} for {m.target.name} with {m.backend} {m.precision} in {m.compile_s:.2f} s "
              f"-> {artifact.path} ({artifact.total_bytes / 2**20:.1f} MiB)", highlight=False, markup=False)


def _settings(warmup: int, runs: int, min_time: float, layer_runs: int) -> api.ProfileSettings:
    return api.ProfileSettings(warmup=warmup, runs=runs, min_time_s=min_time, layer_runs=layer_runs)


WarmupOpt = Annotated[int, typer.Option("--warmup", help="untimed runs first")]
RunsOpt = Annotated[int, typer.Option("--runs", help="at least this many timed runs")]
MinTimeOpt = Annotated[float, typer.Option("--min-time", help="and at least this many seconds of timed runs")]
LayerRunsOpt = Annotated[int, typer.Option("--layer-runs", help="runs with per-layer profiling (0: off)")]


@app.command()
@handle_errors
def profile(
    artifact_dir: Annotated[Path, typer.Argument(help="an artifact directory made by edgecc compile")],
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    min_time: MinTimeOpt = 1.0,
    layer_runs: LayerRunsOpt = 10,
    inputs: Annotated[Optional[Path], typer.Option("--inputs", help=".npz with one array per input (not verified)")] = None,
    json_out: JsonOpt = None,
    device: Annotated[Optional[str], typer.Option("--device", help="run on a board: rpc://HOST:PORT or rpc://TRACKER:PORT/KEY (TVM)")] = None,
) -> None:
    """Run a compiled artifact again (no recompiling): latency, per-layer times, outputs vs the reference."""
    row = api.profile(artifact_dir, _settings(warmup, runs, min_time, layer_runs), inputs=str(inputs) if inputs else None,
                      device=device)
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
    artifacts_dir: Annotated[Optional[Path], typer.Option("--artifacts-dir", help="keep each row's artifact here")] = None,
    json_out: JsonOpt = None,
    targets_file: TargetsFileOpt = None,
) -> None:
    """Compile and profile MODEL with each backend x precision on TARGET, against the onnxruntime FP32 baseline."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..report.table import compare_table, failures

    quiet = json_out is not None and str(json_out) == "-"
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err, disable=quiet,
                  transient=True) as progress:
        task = progress.add_task("comparing", total=None)

        def on_row(row, i, n):
            lat = f"{row.latency_ms.p50:.2f} ms" if row.latency_ms else row.status
            progress.update(task, description=f"{i + 1}/{n} done; last: {row.backend} {row.precision} {lat}")

        report = api.compare(
            model, target, backends=split_list(backends), precisions=split_list(precisions), input_shapes=input_shape,
            settings=_settings(warmup, runs, min_time, layer_runs), timeout_s=timeout, artifacts_dir=artifacts_dir,
            targets_file=targets_file, on_row=on_row,
        )
    write_json(json_out, report.model_dump(mode="json"))
    if not quiet:
        out.print(compare_table(report))
        out.print(f"measured on: {report.measured_on}", highlight=False, markup=False)
        for line in failures(report):
            err.print(f"[yellow]note:[/] {escape(line)}", highlight=False, soft_wrap=True)


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
    import onnx

    from .. import zoo

    model = zoo.get(name).build(seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(output)
    out.print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB)", highlight=False, markup=False)
