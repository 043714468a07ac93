"""Graph rewriting commands: optimize, prune, sparsify, lowrank."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import api
from . import int8_options as q
from ..errors import BadInputError
from .common import ModelArg, ShapeOpt, TargetsFileOpt, app, err, handle_errors, out, split_list, write_json

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


def _print_recovery(outcome) -> None:
    if outcome.recovery is not None:
        layers = outcome.recovery[-1]["layers"]
        skipped = sum(len(s["skipped"]) for s in outcome.recovery)
        if layers:
            before = sum(lr["error_before"] for lr in layers) / len(layers)
            after = sum(lr["error_after"] for lr in layers) / len(layers)
            last = " in the last step" if len(outcome.recovery) > 1 else ""
            _print(f"  {outcome.how}: {len(layers)} layer{'' if len(layers) == 1 else 's'} re-fitted{last} on {outcome.recovery[-1]['samples']} samples, "
                   f"mean relative output error per layer {before:.3g} -> {after:.3g}"
                   + (f" ({skipped} layers left as they were, see --report)" if skipped else ""))
        else:
            _print(f"  {outcome.how}: no layer to re-fit" + (f" ({skipped} could not be, see --report)" if skipped else ""))
    elif outcome.how != "none":
        _print(f"  {outcome.how}: removed channels' means folded into the next layers' biases")
    f = outcome.finetune
    if f is not None:
        agree = ("" if f["agreement_before"] is None else
                 f", held-out agreement with the original {f['agreement_before']:.1%} -> {f['agreement_after']:.1%}")
        _print(f"  fine-tuned: {f['steps']} steps ({f['epochs']:.2f} epochs) in {f['seconds']:.1f} s on {f['train_samples']} "
               f"samples, held-out output error {f['error_before']:.3g} -> {f['error_after']:.3g}{agree}")


def _finetune_progress(budget_s: float | None, quiet: bool):
    """A rich progress bar on stderr and the callback that advances it through fine-tuning's time budget (none
    without ``budget_s``); logs and pipes get one line when fine-tuning starts."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err,
                   disable=quiet or budget_s is None or not err.is_terminal, transient=True)
    task = bar.add_task("pruning", total=None)

    def on_step(step: int, total: int | None, loss: float, seconds: float) -> None:
        if step == 1 and not quiet and not err.is_terminal:
            err.print(f"fine-tuning the pruned model for {budget_s:g} s", highlight=False, markup=False)
        bar.update(task, completed=min(seconds, budget_s), total=budget_s,
                   description=f"fine-tuning: step {step}{'' if total is None else f'/{total}'}, loss {loss:.4g}")

    return bar, on_step


@app.command()
@handle_errors
def prune(
    model: ModelArg,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help=".onnx file to write (not with --dry-run)")] = None,
    ratio: Annotated[Optional[float], typer.Option("--ratio", help="fraction of each channel group to remove, 0 < R < 1")] = None,
    zero_channels: Annotated[bool, typer.Option("--zero-channels", help="remove exactly the channels that are all zero where they are read (or never read)")] = False,
    criterion: Annotated[str, typer.Option("--criterion", help="channel importance: l1, l2, bn-gamma, or activation (measured on --calibration); default: activation with --calibration, else l1")] = "auto",
    calibration: Annotated[Optional[str], typer.Option("--calibration", help="real samples (images, .npz) to measure channels on: ranks them by what removing them moves and re-fits the layers that read removed channels by least squares to the original's outputs (the first 100 samples)")] = None,
    no_recover: Annotated[bool, typer.Option("--no-recover", help="with --calibration: keep today's mean-compensated result instead of re-fitting the next layers by least squares")] = False,
    steps: Annotated[int, typer.Option("--steps", help="with --calibration: prune in N steps with recovery after each")] = 1,
    finetune: Annotated[Optional[float], typer.Option("--finetune", metavar="SECONDS", help="then train the pruned model for SECONDS to reproduce the original's outputs on the --calibration samples (distillation; needs pip install \"edgecc\\[train]\")")] = None,
    mean: q.MeanOpt = None,
    std: q.StdOpt = None,
    layout: q.LayoutOpt = None,
    allocation: Annotated[str, typer.Option("--allocation", help="uniform: every group loses --ratio of its channels; sensitivity: each group's count chosen by the output error measured on --calibration, at the FLOPs uniform leaves; auto: sensitivity with --calibration and recovery, else uniform")] = "auto",
    round_to: Annotated[int, typer.Option("--round-to", help="kept channels per group are a multiple of this")] = 1,
    exclude: Annotated[Optional[str], typer.Option("--exclude", help="comma-separated node names whose output channels stay")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan, write nothing")] = False,
    input_shape: ShapeOpt = None,
    report: ReportOpt = None,
) -> None:
    """Structured channel pruning, made physical: weights are sliced, so every backend runs a smaller model."""
    if output is None and not dry_run:
        raise BadInputError("give -o OUT.onnx, or --dry-run to only print the plan")
    quiet = report is not None and str(report) == "-"
    bar, on_step = _finetune_progress(finetune, quiet)
    with bar:
        outcome = api.prune(
            model, output, ratio=ratio, zero_channels=zero_channels, criterion=criterion, round_to=round_to,
            exclude=split_list(exclude), input_shapes=input_shape, dry_run=dry_run,
            calibration=q.data_spec(calibration, mean, std, layout) if calibration is not None else None,
            recover=not no_recover, steps=steps, finetune_s=finetune, progress=on_step, allocation=allocation,
        )
    write_json(report, outcome.to_json())
    if quiet:
        return
    _print(f"{outcome.source}: {'plan (dry run, nothing written)' if dry_run else 'pruned, written to ' + str(outcome.output)}")
    _print_plan(outcome)
    _print_recovery(outcome)


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
