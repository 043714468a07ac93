"""INT8 post-training quantisation into QDQ ONNX with onnxruntime.quantization.

QDQ (QuantizeLinear/DequantizeLinear pairs around each quantised op) is the portable INT8 format:
onnxruntime runs it with INT8 kernels, OpenVINO executes it as INT8, and it is what TensorRT's
explicit-quantisation path reads. Defaults: activations U8 (asymmetric), weights S8 per output
channel; on x86 with VNNI, S8 activations were measured ~2.5x slower than U8 in onnxruntime.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import onnx
import onnx_ir as ir
from pydantic import BaseModel, ConfigDict, Field

from ...data import Dataset
from ...errors import BadInputError, ModelError
from ..io import EXTERNAL_DATA_THRESHOLD, MAX_IR_VERSION, model_bytes, save_model
from ._session import CalibrationReader


Method = Literal["minmax", "percentile", "entropy", "mse"]
# Histogram bins for entropy calibration: onnxruntime searches thresholds in Python, O(bins^2) per tensor
# (2048 bins: ~2.4 s per tensor here); 512 keeps 192 candidate thresholds at a sixteenth of the cost.
ENTROPY_BINS = 512
# Calibration batches whose intermediate tensors are held at once by the histogram methods.
CHUNK = 8


class QuantizeSettings(BaseModel):
    """How to quantise: calibration method, weight granularity, integer types, samples used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(
        "minmax", description="activation range from min/max, a percentile of |x|, KL entropy, or per tensor the one of "
        "these with the lowest quantisation MSE on the calibration data (mse)")
    per_channel: bool = Field(True, description="one weight scale per output channel (else one per tensor)")
    activations: Literal["uint8", "int8"] = Field("uint8", description="activation type; uint8 is the fast one on x86")
    symmetric_activations: bool = Field(
        False, description="activation ranges symmetric around 0 (zero-point 0), as TensorRT's explicit quantisation needs"
    )
    weights: Literal["int8", "uint8"] = Field("int8", description="weight type")
    samples: int = Field(100, ge=1, description="calibration samples used (the first N of the data)")
    percentile: float = Field(99.999, gt=0, le=100, description="for method percentile: the percentile of |x| kept")
    preprocess: bool = Field(True, description="run onnxruntime's quantisation pre-processing (shape inference, folding)")
    # Both off by default: measured on EfficientNet-Lite0 (top-1 agreement with FP32), one-pass bias correction
    # took INT8 from 91.75% to 47.25% and equalisation from 91.75% to 91.25%; they help other nets (.accurate).
    equalize: bool = Field(
        False, description="cross-layer equalisation of consecutive conv pairs before calibration (depthwise nets)")
    bias_correction: Literal["one-pass", "sequential"] | None = Field(
        None, description="empirical bias correction after quantisation, measured on the calibration data: every layer "
        "against the float model at once (one-pass) or layer by layer on the corrected model (sequential)")

    @property
    def accurate(self) -> bool:
        """Whether the steps around Q/DQ (equalisation, bias correction) are asked for: quantize_accurate."""
        return self.equalize or self.bias_correction is not None

    def describe(self) -> str:
        act = ("U8" if self.activations == "uint8" else "S8") + (" symmetric" if self.symmetric_activations else "")
        wt = "S8" if self.weights == "int8" else "U8"
        gran = "per-channel" if self.per_channel else "per-tensor"
        steps = (", cross-layer equalisation" if self.equalize else "") + (
            f", bias correction {self.bias_correction}" if self.bias_correction else "")
        return f"QDQ {self.method}, activations {act}, weights {wt} {gran}{steps}"

    def pass_record(self) -> str:
        """The manifest's pass name: ``quantize-qdq``, with the non-default choices in brackets
        (``quantize-qdq(equalize,bias-correction=one-pass,method=mse)``)."""
        parts = (["equalize"] if self.equalize else []) + (
            [f"bias-correction={self.bias_correction}"] if self.bias_correction else []) + (
            [f"method={self.method}"] if self.method != "minmax" else [])
        return f"quantize-qdq({','.join(parts)})" if parts else "quantize-qdq"


@dataclass
class QuantizeResult:
    model: ir.Model
    seconds: float
    samples: int
    quantized_nodes: int
    notes: list[str] = field(default_factory=list)
    ranges: list = field(default_factory=list)  # method mse: the RangeChoice of every activation tensor
    # the float model that was quantised (after onnxruntime's pre-processing): node names match the QDQ model's
    float_model: ir.Model | None = None
    # with an accuracy budget (quantize_prepared's max_drop): the mixed-precision search that made ``model``
    mixed: object | None = None  # mixed.MixedPrecisionResult, when an accuracy budget kept layers in float


def _methods():
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy, "mse": CalibrationMethod.MinMax}


def quantize_qdq(model: ir.Model, calibration: Dataset, settings: QuantizeSettings = QuantizeSettings()) -> QuantizeResult:
    """Quantise ``model`` (static shapes) to QDQ INT8, calibrated on ``calibration``'s batches.

    The result passes ``onnx.checker`` (full check) and keeps the model's inputs and outputs.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    notes: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgecc-quant-") as tmp:
        src = save_model(model, Path(tmp) / "model.onnx")
        if settings.preprocess:
            pre = Path(tmp) / "pre.onnx"
            try:
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
                src = pre
            except Exception as e:  # noqa: BLE001 - onnxruntime raises bare Exceptions here; the model is still quantisable
                notes.append(f"quantisation pre-processing failed and was skipped: {type(e).__name__}: {str(e)[:200]}")
        # (a model with external data keeps none: its weights would point into this temporary directory)
        float_model = ir.load(src) if model_bytes(model) <= EXTERNAL_DATA_THRESHOLD else None
        out = Path(tmp) / "int8.onnx"
        extra = {"CalibTensorRangeSymmetric": settings.symmetric_activations,
                 "ActivationSymmetric": settings.symmetric_activations}
        cache, choices = None, []
        # onnxruntime's own calibrator prints progress to stdout: keep stdout for edgecc's output
        with contextlib.redirect_stdout(sys.stderr):
            try:
                if settings.method == "mse":
                    from .ranges import choose_ranges, summary, write_cache

                    choices = choose_ranges(src, calibration, activations=settings.activations,
                                            symmetric=settings.symmetric_activations, tmp=Path(tmp), chunk=CHUNK,
                                            entropy_bins=ENTROPY_BINS)
                    cache = write_cache(choices, Path(tmp) / "ranges.json")
                    notes.append(summary(choices))
                elif settings.method != "minmax":
                    cache = _histogram_ranges(src, calibration, settings, Path(tmp))
                quantize_static(
                    str(src), str(out), None if cache else CalibrationReader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=settings.per_channel, activation_type=qtype[settings.activations],
                    weight_type=qtype[settings.weights], calibrate_method=_methods()[settings.method],
                    extra_options=extra, calibration_cache_path=cache,
                    use_external_data_format=model_bytes(model) > EXTERNAL_DATA_THRESHOLD,
                )
            except (ValueError, RuntimeError) as e:
                raise ModelError(f"onnxruntime's quantiser failed on this model: {str(e).splitlines()[0][:300]}") from None
        proto = onnx.load(str(out))
        if proto.ir_version > MAX_IR_VERSION:
            proto.ir_version = MAX_IR_VERSION
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as e:  # a bug of the quantiser, not of the user's model
            raise RuntimeError(f"the quantised model fails onnx.checker: {str(e).splitlines()[0]}") from e
        qmodel = ir.serde.deserialize_model(proto)
    count = sum(1 for n in qmodel.graph.all_nodes() if n.op_type == "QuantizeLinear")
    if count == 0:
        notes.append("no op was quantised (onnxruntime found nothing it quantises in this model)")
    return QuantizeResult(qmodel, time.perf_counter() - t0, calibration.samples, count, notes, choices, float_model)


def preprocess(model: ir.Model) -> tuple[ir.Model, list[str]]:
    """``model`` after onnxruntime's quantisation pre-processing (shape inference, constant folding, Conv+BN
    fusion), as quantize_qdq applies it; when it fails, ``model`` itself and a note saying why."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="edgecc-pre-") as tmp:
        src, pre = save_model(model, Path(tmp) / "model.onnx"), Path(tmp) / "pre.onnx"
        try:
            with contextlib.redirect_stdout(sys.stderr):
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises bare Exceptions here; the model is still quantisable
            return model, [f"quantisation pre-processing failed and was skipped: {type(e).__name__}: {str(e)[:200]}"]
        return ir.load(pre), []


def _histogram_ranges(model_path: Path, calibration: Dataset, settings: QuantizeSettings, tmp: Path) -> Path:
    """Percentile or KL-entropy activation ranges, written as onnxruntime's calibration cache.

    Computed here rather than inside quantize_static for two reasons: quantize_static cannot set the
    entropy bin counts, and its default (128 bins for 128 quantised bins) leaves a single candidate
    threshold, the min/max range; and it keeps every intermediate tensor of every sample in memory
    (~100 MB per sample for ResNet-50) where this feeds histograms CHUNK batches at a time.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    if settings.method == "entropy":
        method = CalibrationMethod.Entropy
        options = {"num_bins": ENTROPY_BINS, "num_quantized_bins": 128, "symmetric": settings.symmetric_activations}
    else:
        method = CalibrationMethod.Percentile
        options = {"num_bins": 2048, "percentile": settings.percentile, "symmetric": settings.symmetric_activations}
    calibrator = create_calibrator(
        model_path, None, augmented_model_path=str(tmp / "augmented.onnx"), calibrate_method=method, extra_options=options,
    )
    for start in range(0, len(calibration.batches), CHUNK):
        chunk = Dataset(calibration.batches[start:start + CHUNK], calibration.valid[start:start + CHUNK], None, calibration.source)
        calibrator.collect_data(CalibrationReader(chunk))
    path = tmp / "ranges.json"
    save_tensors_data(calibrator.compute_data(), path)
    return path


def check_settings(settings: QuantizeSettings | dict | None) -> QuantizeSettings:
    """Validate user settings into QuantizeSettings (BadInputError naming the bad field)."""
    from pydantic import ValidationError

    if isinstance(settings, QuantizeSettings):
        return settings
    try:
        return QuantizeSettings.model_validate(settings or {})
    except ValidationError as e:
        first = e.errors()[0]
        raise BadInputError(f"quantisation setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
