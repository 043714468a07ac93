"""Empirical bias correction of a QDQ model: the mean output shift INT8 causes, measured, taken out of the bias.

Rounding weights and activations to 8 bits shifts the mean of a layer's outputs (a depthwise kernel
of 9 weights rounds with a visible bias; a clipped activation range moves every mean downstream). For
each quantised Conv/Gemm whose bias is a DequantizeLinear of INT32 values, the per-channel mean of
its output over calibration samples is measured by onnxruntime in the QDQ model and in the float
model it came from (matched by node name), and the difference is subtracted from the INT32 bias (in
units of the bias scale), so the QDQ structure and every scale stay as they were.

Two orders: ``one-pass`` measures every layer in one run of the QDQ model and corrects them all at
once; ``sequential`` corrects layer by layer in topological order, re-measuring after each, so a
layer's correction accounts for the corrections upstream (one run per layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx_ir as ir

from ...data import Dataset
from ...errors import BadInputError
from ..rewrite._util import const_array
from ._session import nodes_by_name, run_tensors

Mode = Literal["one-pass", "sequential"]


@dataclass
class _Layer:
    name: str
    quant_out: str
    float_out: str
    channel_axis: int
    bias_int: ir.Value
    bias_scale: np.ndarray


@dataclass
class BiasCorrectionResult:
    """Layers corrected and the mean |per-channel output shift| over them (output units) before and after."""

    mode: str
    layers: list[str] = field(default_factory=list)
    shift_before: float = 0.0
    shift_after: float = 0.0

    def describe(self) -> str:
        return (f"bias correction ({self.mode}) on {len(self.layers)} layers: mean |output shift| "
                f"{self.shift_before:.4g} -> {self.shift_after:.4g}")


def _layers(qmodel: ir.Model, float_model: ir.Model) -> list[_Layer]:
    floats = nodes_by_name(float_model)
    found = []
    for node in qmodel.graph:  # graph order is topological
        if node.op_type not in ("Conv", "Gemm") or len(node.inputs) < 3 or node.inputs[2] is None:
            continue
        dq = node.inputs[2].producer()
        twin = floats.get(node.name)
        if dq is None or dq.op_type != "DequantizeLinear" or twin is None or twin.op_type != node.op_type:
            continue
        bias = dq.inputs[0]
        values, scale = const_array(bias), const_array(dq.inputs[1])
        if values is None or scale is None or values.dtype != np.int32 or values.ndim != 1:
            continue
        if len(dq.inputs) > 2 and dq.inputs[2] is not None and np.any(const_array(dq.inputs[2])):
            continue
        if any(user is not dq for user, _ in bias.uses()):
            continue
        found.append(_Layer(node.name, node.outputs[0].name, twin.outputs[0].name, 1 if node.op_type == "Conv" else -1,
                            bias, np.broadcast_to(scale.astype(np.float64), values.shape)))
    return found


def _channel_means(model: ir.Model, dataset: Dataset, tensors: dict[str, int]) -> dict[str, np.ndarray]:
    """Per-channel mean (float64) of each named tensor (name -> channel axis) over ``dataset``."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for got in run_tensors(model, dataset, list(tensors)):
        for name, arr in got.items():
            axis = tensors[name] % arr.ndim
            flat = np.moveaxis(arr.astype(np.float64), axis, 0).reshape(arr.shape[axis], -1)
            sums[name] = sums.get(name, 0.0) + flat.sum(1)
            counts[name] = counts.get(name, 0) + flat.shape[1]
    return {n: s / counts[n] for n, s in sums.items()}


def _shifts(qmodel: ir.Model, layers: list[_Layer], dataset: Dataset, float_means: dict[str, np.ndarray]
            ) -> dict[str, np.ndarray]:
    means = _channel_means(qmodel, dataset, {l.quant_out: l.channel_axis for l in layers})
    return {l.name: means[l.quant_out] - float_means[l.float_out] for l in layers}


def _apply(layer: _Layer, shift: np.ndarray) -> None:
    old = layer.bias_int.const_value
    values = old.numpy().astype(np.int64) - np.round(shift / layer.bias_scale).astype(np.int64)
    info = np.iinfo(np.int32)
    layer.bias_int.const_value = ir.tensor(np.clip(values, info.min, info.max).astype(np.int32), name=old.name)


def correct_bias(qmodel: ir.Model, float_model: ir.Model, calibration: Dataset, mode: Mode = "one-pass"
                 ) -> BiasCorrectionResult:
    """Correct the INT32 biases of ``qmodel`` (a QDQ model made from ``float_model``) in place so that each
    quantised Conv/Gemm's per-channel output mean on ``calibration`` matches ``float_model``'s."""
    if mode not in ("one-pass", "sequential"):
        raise BadInputError(f"unknown bias correction mode '{mode}'; known: one-pass, sequential")
    layers = _layers(qmodel, float_model)
    result = BiasCorrectionResult(mode, [l.name for l in layers])
    if not layers:
        return result
    float_means = _channel_means(float_model, calibration, {l.float_out: l.channel_axis for l in layers})
    before = _shifts(qmodel, layers, calibration, float_means)
    result.shift_before = float(np.mean([np.abs(s).mean() for s in before.values()]))
    if mode == "one-pass":
        for layer in layers:
            _apply(layer, before[layer.name])
    else:
        _apply(layers[0], before[layers[0].name])
        for layer in layers[1:]:
            _apply(layer, _shifts(qmodel, [layer], calibration, float_means)[layer.name])
    after = _shifts(qmodel, layers, calibration, float_means)
    result.shift_after = float(np.mean([np.abs(s).mean() for s in after.values()]))
    return result
