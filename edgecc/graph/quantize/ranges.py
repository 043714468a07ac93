"""Activation ranges chosen per tensor by measured quantisation error (QuantizeSettings.method = "mse").

One calibration method for the whole network is a compromise: min/max keeps rare outliers and wastes
levels on them (a ReLU output with a long tail), a percentile clips tensors whose extremes matter (a
classifier's logits), KL entropy is tuned for neither. Here every candidate range onnxruntime's
calibrators give (min/max, the percentiles in PERCENTILES, entropy) is scored on the tensor's own
calibration values by the mean squared error of quantising them with that range (the same scale and
zero point onnxruntime will write), and the lowest wins. The ranges go to ``quantize_static`` as a
calibration cache, so the QDQ model is built exactly as for one method.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data import Dataset

PERCENTILES = (99.9, 99.99, 99.999)
# Values kept per tensor (a seeded random subset of each batch) to score the candidates: an unbiased
# estimate of the MSE at a bounded memory cost (4 bytes each).
SAMPLE_VALUES = 1 << 18


@dataclass(frozen=True)
class RangeChoice:
    """The range picked for one activation tensor and the MSE (squared units of the tensor) of every candidate."""

    tensor: str
    method: str
    low: float
    high: float
    mse: dict[str, float]


def quantization_mse(values: np.ndarray, low: float, high: float, activations: str = "uint8",
                     symmetric: bool = False) -> float:
    """Mean squared error of quantising ``values`` to 8 bits with the range [low, high], with the scale and
    zero point onnxruntime's QDQ quantiser derives from that range (0 always representable)."""
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType

    qtype = TensorProto.UINT8 if activations == "uint8" else TensorProto.INT8
    qmin, qmax = get_qmin_qmax_for_qType(qtype, symmetric=symmetric)
    zp, scale = compute_scale_zp(np.array(low, np.float32), np.array(high, np.float32), qmin, qmax, symmetric)
    x = values.astype(np.float64)
    q = np.clip(np.round(x / float(scale)) + float(zp), qmin, qmax)
    return float(np.mean(((q - float(zp)) * float(scale) - x) ** 2))


def pick(values: np.ndarray, candidates: dict[str, tuple[float, float]], activations: str = "uint8",
         symmetric: bool = False, tensor: str = "") -> RangeChoice:
    """The candidate range (method -> (low, high)) with the lowest quantisation MSE on ``values``; ties go
    to the first candidate."""
    mse = {m: quantization_mse(values, lo, hi, activations, symmetric) for m, (lo, hi) in candidates.items()}
    best = min(mse, key=lambda m: (mse[m], list(candidates).index(m)))
    lo, hi = candidates[best]
    return RangeChoice(tensor, best, float(lo), float(hi), mse)


def _chunks(calibration: Dataset, size: int) -> Iterable[Dataset]:
    for start in range(0, len(calibration.batches), size):
        yield Dataset(calibration.batches[start:start + size], calibration.valid[start:start + size], None,
                      calibration.source)


def candidate_ranges(model_path: Path, calibration: Dataset, symmetric: bool, tmp: Path, chunk: int,
                     entropy_bins: int) -> dict[str, dict[str, tuple[float, float]]]:
    """Per tensor onnxruntime calibrates: method label -> (low, high), from min/max, each percentile of
    PERCENTILES (one histogram pass) and KL entropy (one more pass)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    from ._session import CalibrationReader

    def run(method, options, name):
        cal = create_calibrator(model_path, None, augmented_model_path=str(tmp / f"aug-{name}.onnx"),
                                calibrate_method=method, extra_options=options)
        for part in _chunks(calibration, chunk):
            cal.collect_data(CalibrationReader(part))
        return cal

    found: dict[str, dict[str, tuple[float, float]]] = {}

    def add(label, data):
        for tensor, td in data.data.items():
            lo, hi = td.range_value
            found.setdefault(tensor, {})[label] = (float(np.min(lo)), float(np.max(hi)))

    add("minmax", run(CalibrationMethod.MinMax, {"symmetric": symmetric}, "minmax").compute_data())
    pct = run(CalibrationMethod.Percentile, {"num_bins": 2048, "percentile": PERCENTILES[0], "symmetric": symmetric},
              "percentile")
    for p in PERCENTILES:
        pct.collector.percentile = p
        add(f"percentile {p:g}", pct.compute_data())
    ent = run(CalibrationMethod.Entropy, {"num_bins": entropy_bins, "num_quantized_bins": 128, "symmetric": symmetric},
              "entropy")
    add("entropy", ent.compute_data())
    return found


def sample_values(model, calibration: Dataset, tensors: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """Up to SAMPLE_VALUES values of each named tensor of ``model`` (an onnx_ir Model) over ``calibration``:
    every value when they fit, else the same share of each batch, drawn with a seeded generator."""
    from ._session import run_tensors

    rng = np.random.default_rng(seed)
    per_batch = max(1024, SAMPLE_VALUES // max(1, len(calibration.batches)))
    parts: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    for got in run_tensors(model, calibration, tensors):
        for t, arr in got.items():
            flat = arr.reshape(-1)
            if flat.size > per_batch:
                flat = flat[rng.choice(flat.size, per_batch, replace=False)]
            parts[t].append(flat.astype(np.float32))
    return {t: np.concatenate(p) for t, p in parts.items() if p}


def choose_ranges(model_path: Path, calibration: Dataset, *, activations: str, symmetric: bool, tmp: Path,
                  chunk: int, entropy_bins: int) -> list[RangeChoice]:
    """For every activation tensor onnxruntime would quantise in the model at ``model_path``, the candidate
    range with the lowest quantisation MSE on ``calibration``."""
    import onnx
    import onnx_ir as ir

    candidates = candidate_ranges(model_path, calibration, symmetric, tmp, chunk, entropy_bins)
    model = ir.serde.deserialize_model(onnx.load(str(model_path)))
    values = sample_values(model, calibration, sorted(candidates))
    return [pick(values[t], candidates[t], activations, symmetric, t) if t in values
            else RangeChoice(t, "minmax", *candidates[t]["minmax"], {}) for t in sorted(candidates)]


def write_cache(choices: list[RangeChoice], path: Path) -> Path:
    """The chosen ranges as onnxruntime's calibration cache (JSON), which quantize_static reads."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    data = {c.tensor: (np.array(c.low, np.float32), np.array(c.high, np.float32)) for c in choices}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), path)
    return path


def summary(choices: list[RangeChoice]) -> str:
    """'per-tensor ranges: minmax 12, percentile 99.99 5, ...' (how often each method won)."""
    counts: dict[str, int] = {}
    for c in choices:
        counts[c.method] = counts.get(c.method, 0) + 1
    return "per-tensor ranges by lowest quantisation MSE: " + ", ".join(f"{m} {n}" for m, n in sorted(counts.items()))
