"""INT8 that keeps accuracy: the steps before and after Q/DQ, composed.

``quantize_accurate`` = onnxruntime's pre-processing (Conv+BN folded, so equalisation sees conv pairs)
-> cross-layer equalisation (:mod:`.equalize`) -> QDQ quantisation with the given settings (method
"mse": per-tensor ranges, :mod:`.ranges`) -> empirical bias correction (:mod:`.bias_correction`).
Its ``float_model`` (pre-processed and equalised: the same function as the input model) is the
float reference whose node names match the QDQ model: what :func:`.mixed.quantize_within_budget`
takes as ``model`` with ``quantized=result.model``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import onnx_ir as ir

from ...data import Dataset
from .bias_correction import BiasCorrectionResult, Mode, correct_bias
from .equalize import EqualizationResult, clip_maxima, equalize
from .qdq import QuantizeResult, QuantizeSettings, preprocess, quantize_qdq


@dataclass
class AccurateQuantizeResult:
    """The QDQ model (``quantized.model``), the float model it was made from, and what each step did."""

    quantized: QuantizeResult
    float_model: ir.Model
    equalization: EqualizationResult | None
    bias: BiasCorrectionResult | None
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> ir.Model:
        return self.quantized.model


def quantize_accurate(model: ir.Model, calibration: Dataset, settings: QuantizeSettings = QuantizeSettings(), *,
                      equalization: bool = True, bounded_equalization: bool = True,
                      bias_correction: Mode | None = "sequential") -> AccurateQuantizeResult:
    """Quantise ``model`` to QDQ INT8 on ``calibration`` with cross-layer equalisation first (when
    ``equalization``; with ``bounded_equalization`` also the pairs through ReLU6, adjusted to the
    calibration data's maxima) and bias correction after (``bias_correction``: "one-pass", "sequential"
    or None). ``model`` is not modified."""
    t0 = time.perf_counter()
    notes: list[str] = []
    float_model = model.clone()
    if settings.preprocess:
        float_model, pre_notes = preprocess(float_model)
        notes += pre_notes
    eq = None
    if equalization:
        maxima = clip_maxima(float_model, calibration) if bounded_equalization else None
        eq = equalize(float_model, clip_maxima=maxima)
        notes.append(eq.describe())
        notes += [f"  not equalised: {s}" for s in eq.skipped]
    quantized = quantize_qdq(float_model, calibration, settings.model_copy(update={"preprocess": False}))
    bias = None
    if bias_correction is not None:
        bias = correct_bias(quantized.model, float_model, calibration, bias_correction)
        notes.append(bias.describe())
    quantized.notes += notes
    quantized.seconds = time.perf_counter() - t0
    return AccurateQuantizeResult(quantized, float_model, eq, bias, notes)
