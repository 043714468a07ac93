"""INT8 and accuracy commands: ``quantize`` (QDQ INT8 ONNX) and ``evaluate`` (accuracy on a data set)."""

from __future__ import annotations

import contextlib

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import api
from ..graph.quantize import FLOAT_LAYERS_NOTE
from .common import JsonOpt, ModelArg, ShapeOpt, app, err, handle_errors, out, write_json
from .int8_options import (
    DATA_HELP, BiasCorrectionOpt, EqualizeOpt, LayoutOpt, MeanOpt, MethodOpt, PerChannelOpt, SamplesOpt, StdOpt,
    data_spec, quantize_settings, random_warning_printed, warn_if_random,
)


@contextlib.contextmanager
def _budget_progress(on: bool):
    """The mixed-precision search's progress on stderr: a bar on a terminal, a line per phase in logs and pipes."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err,
                   disable=not on or not err.is_terminal, transient=True)
    task, phase = bar.add_task("mixed precision", total=None), [""]

    def progress(what: str, done: int, total: int | None) -> None:
        if (total is None or what != phase[0]) and not err.is_terminal:  # each evaluation; ranking once
            err.print(f"mixed precision: {what}" + ("" if total is None else f" ({total})"), highlight=False, markup=False)
        phase[0] = what
        bar.update(task, completed=done, total=total, description=f"mixed precision: {what}")

    with bar:
        yield progress if on else None


@app.command("quantize")
@handle_errors
def quantize_cmd(
    model: ModelArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="the INT8 QDQ .onnx file to write")],
    calibration: Annotated[str, typer.Option("--calibration", help="calibration data: " + DATA_HELP)],
    method: MethodOpt = "minmax",
    per_channel: PerChannelOpt = True,
    samples: SamplesOpt = 100,
    activations: Annotated[str, typer.Option("--activations", help="activation type: uint8 (fast on x86) or int8")] = "uint8",
    symmetric: Annotated[bool, typer.Option("--symmetric-activations", help="zero-point 0 (TensorRT's explicit quantisation needs S8 symmetric)")] = False,
    equalize: EqualizeOpt = False,
    bias_correction: BiasCorrectionOpt = None,
    eval_data: Annotated[Optional[str], typer.Option("--eval", help="with --max-accuracy-drop: the data the accuracy budget is measured on (an .npz with 'labels': top-1; else top-1 agreement with FP32)")] = None,
    max_accuracy_drop: Annotated[Optional[float], typer.Option("--max-accuracy-drop", help="keep in float the fewest layers that hold the drop from FP32 within this many points on --eval (mixed precision)")] = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    layout: LayoutOpt = None,
    input_shape: ShapeOpt = None,
) -> None:
    """Quantise MODEL to INT8 QDQ ONNX (activations U8, weights S8) calibrated on DATA; runs on onnxruntime and OpenVINO."""
    spec = data_spec(calibration, mean, std, layout)
    warn_if_random(spec)
    with random_warning_printed():
        settings = quantize_settings(method, per_channel, samples, equalize, bias_correction) | {
            "activations": activations, "symmetric_activations": symmetric}
        with _budget_progress(max_accuracy_drop is not None) as progress:
            result = api.quantize(model, output, spec, settings, input_shapes=input_shape,
                                  eval_data=data_spec(eval_data, mean, std, layout) if eval_data is not None else None,
                                  max_accuracy_drop=max_accuracy_drop, progress=progress)
    for note in result.notes:
        if not note.startswith(FLOAT_LAYERS_NOTE):  # the JSON list for manifests: printed readably below
            out.print(f"  {note}", highlight=False, markup=False)
    out.print(f"quantised {result.quantized_nodes} tensors in {result.seconds:.1f} s -> {output} "
              f"({output.stat().st_size / 2**20:.2f} MiB)", highlight=False, markup=False)
    if result.mixed is not None:
        kept = ", ".join(result.mixed.float_layers) or "none"
        out.print(f"layers kept in float ({len(result.mixed.float_layers)}): {kept}", highlight=False, markup=False)
        if not result.mixed.within_budget:  # written all the same (exit 0): the closest model found
            err.print(f"[bold yellow]WARNING:[/] OVER budget: drop {result.mixed.drop:.2f} points > "
                      f"{max_accuracy_drop:g} even with these layers in float", highlight=False)


@app.command("evaluate")
@handle_errors
def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="an artifact directory (run by its backend) or an .onnx / zoo:NAME (onnxruntime)")],
    data: Annotated[str, typer.Option("--data", help="an .npz with inputs and 'labels', or images (agreement/psnr only)")],
    metric: Annotated[Optional[list[str]], typer.Option("--metric", help="top1, top5, agreement, psnr, cosine, an installed edgecc.metrics plugin, or MODULE:FUNCTION (repeatable; default: what the data allows)")] = None,
    reference: Annotated[Optional[str], typer.Option("--reference", help="FP32 model for agreement/psnr (default for an artifact: the model it was compiled from)")] = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    layout: LayoutOpt = None,
    input_shape: ShapeOpt = None,
    json_out: JsonOpt = None,
) -> None:
    """Accuracy of MODEL on a data set: top-1 against labels, top-1 agreement or PSNR against FP32."""
    res = api.evaluate(model, data_spec(data, mean, std, layout), metrics=tuple(metric) if metric else None,
                       reference=reference, input_shapes=input_shape)
    write_json(json_out, res.to_json())
    if json_out is not None and str(json_out) == "-":
        return
    parts = [f"{res.samples} samples"]
    if res.top1 is not None:
        parts.append(f"top-1 accuracy {res.top1:.2f}%")
    if res.agreement is not None:
        parts.append(f"top-1 agreement with FP32 {res.agreement:.2f}%")
    if res.psnr_db is not None:
        parts.append(f"PSNR {res.psnr_db:.2f} dB")
    parts += [f"{name} {value:.4g}" for name, value in res.values.items() if name not in ("top1", "agreement", "psnr")]
    out.print(f"{model}: " + ", ".join(parts), highlight=False, markup=False)
