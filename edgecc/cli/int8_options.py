"""Options and helpers shared by quantize, evaluate, compile, compare and search: the INT8/accuracy flags, backend
options (--option) and the options a run varies (--vary)."""

from __future__ import annotations

import contextlib
import warnings
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..data import RANDOM_WARNING, DataSpec, ImagePreprocessing
from ..errors import BadInputError
from .common import err


DATA_HELP = "a directory of images, an .npz/.npy of input arrays, or 'random' (latency only: accuracy is meaningless)"
CalibrationOpt = Annotated[Optional[str], typer.Option("--calibration", help="INT8 calibration data: " + DATA_HELP)]
METHODS = ("minmax", "percentile", "entropy", "mse")
MethodOpt = Annotated[str, typer.Option("--method", help="calibration method: minmax, percentile, entropy, or mse "
                                        "(per tensor, the range with the lowest quantisation error)")]
EqualizeOpt = Annotated[bool, typer.Option("--equalize", help="INT8: cross-layer equalisation of consecutive conv pairs "
                                           "before calibration (depthwise nets); off by default")]
BiasCorrectionOpt = Annotated[Optional[str], typer.Option(
    "--bias-correction", help="INT8: empirical bias correction after quantisation, one-pass or sequential; off by "
    "default (it can cost accuracy: measure with --eval)")]
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


def quantize_settings(method: str, per_channel: bool, samples: int, equalize: bool = False,
                      bias_correction: Optional[str] = None) -> dict[str, object]:
    """The INT8 flags as QuantizeSettings fields (the steps around Q/DQ only when asked for)."""
    if method not in METHODS:
        raise BadInputError(f"unknown calibration method '{method}'; known: {', '.join(METHODS)}")
    if bias_correction is not None and bias_correction not in ("one-pass", "sequential"):
        raise BadInputError(f"unknown bias correction '{bias_correction}'; known: one-pass, sequential")
    steps = ({"equalize": True} if equalize else {}) | ({"bias_correction": bias_correction} if bias_correction else {})
    return {"method": method, "per_channel": per_channel, "samples": samples} | steps


def warn_if_random(spec: DataSpec | None) -> None:
    if spec is not None and spec.is_random:
        err.print(f"[bold yellow]WARNING:[/] {escape(RANDOM_WARNING)}", highlight=False, soft_wrap=True)


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


def vary_options(items: Optional[list[str]]) -> dict[str, dict[str, list[object]]] | None:
    """``BACKEND.KEY=V1,V2`` items as {backend: {key: [values]}} (each value read as in --option)."""
    from .common import parse_options

    found: dict[str, dict[str, list[object]]] = {}
    for item in items or []:
        head, sep, values = item.partition("=")
        backend, dot, key = head.partition(".")
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not dot or not backend.strip() or not key.strip() or not parts:
            raise BadInputError(f"malformed --vary '{item}': give BACKEND.KEY=VALUE1,VALUE2, e.g. openvino.performance_hint=LATENCY,THROUGHPUT")
        found.setdefault(backend.strip(), {})[key.strip()] = [parse_options([f"v={v}"])["v"] for v in parts]
    return found or None


VaryOpt = Annotated[
    Optional[list[str]],
    typer.Option("--vary", help="BACKEND.KEY=V1,V2: build that backend's rows once per value (repeatable; "
                 "several keys: every combination), e.g. openvino.performance_hint=LATENCY,THROUGHPUT"),
]


def accuracy_notes(report) -> list[str]:
    """Lines under the compare table: rows over the accuracy budget and the fastest row within it."""
    if report.max_accuracy_drop is None:
        return []
    lines = []
    metric = report.accuracy_metric
    unit = "points" if metric in ("top1", "top5", "agreement", None) else f"of {metric}"
    for r in report.results:
        if r.within_accuracy_budget is False:
            lines.append(f"over budget: {r.name} {r.precision} loses {r.accuracy_drop:{'.2f' if unit == 'points' else '.4g'}} {unit} "
                         f"(budget {report.max_accuracy_drop:g})")
    ok = [r for r in report.results if r.status == "ok" and r.within_accuracy_budget and r.latency_ms is not None]
    if ok:
        best = min(ok, key=lambda r: r.latency_ms.p50)
        speed = f", {best.speedup:.2f}x the baseline" if best.speedup else ""
        lines.append(f"fastest within {report.max_accuracy_drop:g} {unit}: {best.name} {best.precision} "
                     f"({best.latency_ms.p50:.3f} ms{speed})")
    return lines


@contextlib.contextmanager
def random_warning_printed():
    """Silence the API's RandomCalibrationWarning: the CLI has printed it once, in its own words."""
    from ..graph.quantize import RandomCalibrationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomCalibrationWarning)
        yield
