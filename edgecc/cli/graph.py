"""Graph rewriting commands: optimize, prune, sparsify, lowrank."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .. import api
from .common import JsonOpt, ModelArg, ShapeOpt, TargetsFileOpt, app, handle_errors, out, split_list, write_json

OutputOpt = Annotated[Path, typer.Option("-o", "--output", help=".onnx file to write")]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", help="write what was done as JSON to this path ('-' for stdout)")]
InputsOpt = Annotated[Optional[Path], typer.Option("--inputs", help=".npz with one array per input, also used to verify")]


def _print(text: str) -> None:
    out.print(text, highlight=False, markup=False)


@app.command()
@handle_errors
def optimize(
    model: ModelArg,
    output: OutputOpt,
    input_shape: ShapeOpt = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="add the rule pack of the target's preferred backend")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", "-b", help="add this backend's rule pack (overrides --target's)")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="list rules that matched but declined, and why")] = False,
    inputs: InputsOpt = None,
    report: ReportOpt = None,
    targets_file: TargetsFileOpt = None,
) -> None:
    """Simplify and fuse MODEL's graph (cleanup, constant folding, onnxsim, fusion rules); outputs verified unchanged."""
    outcome = api.optimize(
        model, output, input_shapes=input_shape, target=target, backend=backend, explain=explain,
        inputs=str(inputs) if inputs else None, targets_file=targets_file,
    )
    write_json(report, outcome.to_json())
    if report is not None and str(report) == "-":
        return
    r = outcome.optimize
    _print(f"{outcome.source}: {r.nodes_before} -> {r.nodes_after} nodes, written to {outcome.output}")
    for rec in r.records:
        if rec.modified:
            _print(f"  {rec.name:<36} {rec.nodes_before:>6} -> {rec.nodes_after:<6} {rec.time_ms:8.1f} ms")
        elif rec.details.get("skipped"):
            _print(f"  {rec.name:<36} skipped: {rec.details['skipped']}")
    if r.fired:
        _print("  rules fired: " + ", ".join(f"{k} x{v}" for k, v in sorted(r.fired.items())))
    for eq in outcome.equivalence:
        _print(f"  verified against the original in onnxruntime: {eq.describe()}")
    if explain:
        if not r.declined:
            _print("  no rule matched and declined")
        for d in r.declined:
            _print(f"  declined {d.rule} at {d.node} ({d.op_type}): {d.reason}")
