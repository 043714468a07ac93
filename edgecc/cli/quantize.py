"""INT8 and accuracy commands: ``quantize`` (QDQ INT8 ONNX) and ``evaluate`` (accuracy on a data set).

The calibration/evaluation options defined here are also used by ``compile`` and ``compare``.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .. import api
from ..data import RANDOM_WARNING, DataSpec, ImagePreprocessing
from ..errors import BadInputError
from .common import JsonOpt, ModelArg, ShapeOpt, app, err, handle_errors, out, write_json

DATA_HELP = "a directory of images, an .npz/.npy of input arrays, or 'random' (latency only: accuracy is meaningless)"
CalibrationOpt = Annotated[Optional[str], typer.Option("--calibration", help="INT8 calibration data: " + DATA_HELP)]
MethodOpt = Annotated[str, typer.Option("--method", help="calibration method: minmax, percentile or entropy")]
PerChannelOpt = Annotated[bool, typer.Option("--per-channel/--per-tensor", help="weight scales per output channel or per tensor")]
SamplesOpt = Annotated[int, typer.Option("--samples", help="calibration samples used (the first N)")]
MeanOpt = Annotated[Optional[str], typer.Option("--mean", help="images: per-channel mean after scaling to [0,1], e.g. 0.485,0.456,0.406 (default ImageNet's)")]
StdOpt = Annotated[Optional[str], typer.Option("--std", help="images: per-channel std, e.g. 0.229,0.224,0.225 (default ImageNet's)")]
LayoutOpt = Annotated[Optional[str], typer.Option("--layout", help="images: NCHW or NHWC (default: found from the input shape)")]


def _floats(text: Optional[str], what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BadInputError(f"--{what} '{text}': expected comma-separated numbers") from None
    if not values:
        raise BadInputError(f"--{what} is empty")
    return values


def data_spec(source: str, mean: Optional[str], std: Optional[str], layout: Optional[str]) -> DataSpec:
    prep = ImagePreprocessing(mean=_floats(mean, "mean"), std=_floats(std, "std"), layout=layout.upper() if layout else None)  # type: ignore[arg-type]
    return DataSpec(source, preprocessing=prep)


def quantize_settings(method: str, per_channel: bool, samples: int) -> dict[str, object]:
    if method not in ("minmax", "percentile", "entropy"):
        raise BadInputError(f"unknown calibration method '{method}'; known: minmax, percentile, entropy")
    return {"method": method, "per_channel": per_channel, "samples": samples}


def warn_if_random(spec: DataSpec | None) -> None:
    if spec is not None and spec.is_random:
        err.print(f"[bold yellow]WARNING:[/] {escape(RANDOM_WARNING)}", highlight=False, soft_wrap=True)


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
    mean: MeanOpt = None,
    std: StdOpt = None,
    layout: LayoutOpt = None,
    input_shape: ShapeOpt = None,
) -> None:
    """Quantise MODEL to INT8 QDQ ONNX (activations U8, weights S8) calibrated on DATA; runs on onnxruntime and OpenVINO."""
    spec = data_spec(calibration, mean, std, layout)
    warn_if_random(spec)
    with random_warning_printed():
        settings = quantize_settings(method, per_channel, samples) | {"activations": activations, "symmetric_activations": symmetric}
        result = api.quantize(model, output, spec, settings, input_shapes=input_shape)
    for note in result.notes:
        out.print(f"  {note}", highlight=False, markup=False)
    out.print(f"quantised {result.quantized_nodes} tensors in {result.seconds:.1f} s -> {output} "
              f"({output.stat().st_size / 2**20:.2f} MiB)", highlight=False, markup=False)


@app.command("evaluate")
@handle_errors
def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="an artifact directory (run by its backend) or an .onnx / zoo:NAME (onnxruntime)")],
    data: Annotated[str, typer.Option("--data", help="an .npz with inputs and 'labels', or images (agreement/psnr only)")],
    metric: Annotated[Optional[list[str]], typer.Option("--metric", help="top1, agreement or psnr (repeatable; default: what the data allows)")] = None,
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
    out.print(f"{model}: " + ", ".join(parts), highlight=False, markup=False)


def backend_options(items: Optional[list[str]]) -> dict[str, dict[str, object]] | None:
    """``BACKEND.KEY=VALUE`` pairs as {backend: {key: value}} (values parsed as in --option)."""
    from .common import parse_options

    found: dict[str, dict[str, object]] = {}
    for item in items or []:
        head, sep, _ = item.partition("=")
        backend, dot, key = head.partition(".")
        if not sep or not dot or not backend or not key:
            raise BadInputError(f"malformed --option '{item}': compare takes BACKEND.KEY=VALUE, e.g. openvino.int8_quantizer=nncf")
        found.setdefault(backend.strip(), {}).update(parse_options([item[len(backend) + 1:]]))
    return found or None


def accuracy_notes(report) -> list[str]:
    """Lines under the compare table: rows over the accuracy budget and the fastest row within it."""
    if report.max_accuracy_drop is None:
        return []
    lines = []
    for r in report.results:
        if r.within_accuracy_budget is False:
            lines.append(f"over budget: {r.backend} {r.precision} loses {r.accuracy_drop:.2f} points "
                         f"(budget {report.max_accuracy_drop:g})")
    ok = [r for r in report.results if r.status == "ok" and r.within_accuracy_budget and r.latency_ms is not None]
    if ok:
        best = min(ok, key=lambda r: r.latency_ms.p50)
        speed = f", {best.speedup:.2f}x the baseline" if best.speedup else ""
        lines.append(f"fastest within {report.max_accuracy_drop:g} points: {best.backend} {best.precision} "
                     f"({best.latency_ms.p50:.3f} ms{speed})")
    return lines


@contextlib.contextmanager
def random_warning_printed():
    """Silence the API's RandomCalibrationWarning: the CLI has printed it once, in its own words."""
    from ..graph.quantize import RandomCalibrationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomCalibrationWarning)
        yield
