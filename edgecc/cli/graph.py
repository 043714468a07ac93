"""Graph rewriting commands: optimize, prune, sparsify, lowrank."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import api
from . import int8_options as q
from .common import ModelArg, ShapeOpt, TargetsFileOpt, app, handle_errors, out, split_list, write_json

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
        elif rec.details.get("skipped") or rec.details.get("failed"):
            what = "skipped" if rec.details.get("skipped") else "failed and was undone"
            _print(f"  {rec.name:<36} {what}: {rec.details.get('skipped') or rec.details.get('failed')}")
    if r.fired:
        _print("  rules fired: " + ", ".join(f"{k} x{v}" for k, v in sorted(r.fired.items())))
    for eq in outcome.equivalence:
        _print(f"  verified against the original in onnxruntime: {eq.describe()}")
    if explain:
        if not r.declined:
            _print("  no rule matched and declined")
        same: dict[tuple[str, str], list[str]] = {}
        for d in r.declined:
            same.setdefault((d.rule, d.reason), []).append(d.node)
        for (rule, reason), nodes in sorted(same.items()):
            where = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
            _print(f"  declined {rule} at {where}: {reason}")


def _print_plan(outcome) -> None:
    plan, b, a = outcome.plan, outcome.before, outcome.after
    for g in plan.groups:
        layers = ", ".join(g.layers[:3]) + (f" +{len(g.layers) - 3} more" if len(g.layers) > 3 else "")
        state = f"frozen: {g.frozen}" if g.frozen else f"{g.channels} -> {g.kept}"
        _print(f"  group {g.id:<3} {state:<28} {layers}")
    for bar in plan.barriers:
        _print(f"  barrier {bar.op_type} '{bar.node}': {bar.reason}")
    for note in plan.notes:
        _print(f"  note: {note}")
    _print(f"  FLOPs {b['flops'] / 1e9:.4f} -> {a['flops'] / 1e9:.4f} G ({a['flops'] / max(b['flops'], 1):.1%}), "
           f"params {b['params']:,} -> {a['params']:,} ({a['params'] / max(b['params'], 1):.1%}), "
           f"{plan.removed_channels} channels removed")
    if outcome.equivalence is not None and outcome.equivalence.error is not None:
        e = outcome.equivalence.error
        _print(f"  outputs vs the original on seeded random inputs: max abs error {e.max_abs_error:.3g}, cosine {e.cosine:.6f} "
               "(measure accuracy on real data with edgecc evaluate)")


@app.command()
@handle_errors
def prune(
    model: ModelArg,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help=".onnx file to write (not with --dry-run)")] = None,
    ratio: Annotated[Optional[float], typer.Option("--ratio", help="fraction of each channel group to remove, 0 < R < 1")] = None,
    zero_channels: Annotated[bool, typer.Option("--zero-channels", help="remove exactly the channels that are all zero where they are read (or never read)")] = False,
    criterion: Annotated[str, typer.Option("--criterion", help="channel importance: l1, l2, bn-gamma, or activation (measured on --calibration); default: activation with --calibration, else l1")] = "auto",
    calibration: Annotated[Optional[str], typer.Option("--calibration", help="real samples (images, .npz) to measure channels on: ranks them by what removing them moves and folds their means into the next layers' biases")] = None,
    mean: q.MeanOpt = None,
    std: q.StdOpt = None,
    layout: q.LayoutOpt = None,
    round_to: Annotated[int, typer.Option("--round-to", help="kept channels per group are a multiple of this")] = 1,
    exclude: Annotated[Optional[str], typer.Option("--exclude", help="comma-separated node names whose output channels stay")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan, write nothing")] = False,
    input_shape: ShapeOpt = None,
    report: ReportOpt = None,
) -> None:
    """Structured channel pruning, made physical: weights are sliced, so every backend runs a smaller model."""
    if output is None and not dry_run:
        from ..errors import BadInputError

        raise BadInputError("give -o OUT.onnx, or --dry-run to only print the plan")
    outcome = api.prune(
        model, output, ratio=ratio, zero_channels=zero_channels, criterion=criterion, round_to=round_to,
        exclude=split_list(exclude), input_shapes=input_shape, dry_run=dry_run,
        calibration=q.data_spec(calibration, mean, std, layout) if calibration is not None else None,
    )
    write_json(report, outcome.to_json())
    if report is not None and str(report) == "-":
        return
    _print(f"{outcome.source}: {'plan (dry run, nothing written)' if dry_run else 'pruned, written to ' + str(outcome.output)}")
    _print_plan(outcome)


def _print_rewrite(outcome, head: str) -> None:
    b, a, e = outcome.before, outcome.after, outcome.equivalence.error
    _print(f"{outcome.source}: {head}, written to {outcome.output}")
    _print(f"  FLOPs {b['flops'] / 1e9:.4f} -> {a['flops'] / 1e9:.4f} G, params {b['params']:,} -> {a['params']:,}, "
           f"nodes {b['nodes']} -> {a['nodes']}")
    for name, why in outcome.result.skipped.items():
        _print(f"  skipped {name}: {why}")
    _print(f"  outputs vs the original: max abs error {e.max_abs_error:.3g} ({e.max_rel_error:.3g} of the range), "
           f"cosine {e.cosine:.6f}")


@app.command()
@handle_errors
def sparsify(
    model: ModelArg,
    output: OutputOpt,
    pattern: Annotated[str, typer.Option("--pattern", help="unstructured or 2:4")] = "unstructured",
    ratio: Annotated[float, typer.Option("--ratio", help="fraction of weights zeroed per layer (2:4: 0.5)")] = 0.5,
    input_shape: ShapeOpt = None,
    report: ReportOpt = None,
) -> None:
    """Zero weights by magnitude (unstructured) or 2:4 semi-structured; recorded in the model metadata for TensorRT."""
    outcome = api.sparsify(model, output, pattern=pattern, ratio=ratio, input_shapes=input_shape)
    write_json(report, outcome.to_json())
    if report is not None and str(report) == "-":
        return
    r = outcome.result
    _print_rewrite(outcome, f"{r.pattern} sparsity {r.sparsity:.1%} over {len(r.layers)} layers")


@app.command()
@handle_errors
def lowrank(
    model: ModelArg,
    output: OutputOpt,
    energy: Annotated[float, typer.Option("--energy", help="share of the singular-value spectrum kept, 0 < E <= 1")] = 0.95,
    input_shape: ShapeOpt = None,
    report: ReportOpt = None,
) -> None:
    """Factorise Gemm/MatMul weights and 1x1 Convs by truncated SVD, only where FLOPs go down."""
    outcome = api.lowrank(model, output, energy=energy, input_shapes=input_shape)
    write_json(report, outcome.to_json())
    if report is not None and str(report) == "-":
        return
    r = outcome.result
    _print_rewrite(outcome, f"{len(r.layers)} layers factorised at energy {r.energy:g}")
    for l in r.layers:
        _print(f"  {l.node} ({l.op_type}) [{l.shape[0]}x{l.shape[1]}] -> rank {l.rank}, weight error {l.weight_error:.3g}")
