"""INT8 post-training quantisation (QDQ ONNX) calibrated on user data.

:func:`quantize_prepared` is what ``edgecc quantize`` and ``compile --precision int8`` use: it reads
the calibration data (:mod:`edgecc.data`: images, .npz/.npy, or ``random`` with a warning) for the
model's inputs and quantises with :func:`quantize_qdq`.
"""

from __future__ import annotations

import warnings

from ...data import RANDOM_WARNING, Dataset, DataSpec, load_dataset
from ..io import PreparedModel
from .accurate import AccurateQuantizeResult, quantize_accurate
from .mixed import MixedPrecisionResult, onnxruntime_scorer, quantize_within_budget
from .qdq import QuantizeResult, QuantizeSettings, check_settings, quantize_qdq

__all__ = ["QuantizeResult", "QuantizeSettings", "RandomCalibrationWarning", "check_settings", "quantize_qdq",
           "quantize_prepared", "calibration_spec", "AccurateQuantizeResult", "quantize_accurate",
           "MixedPrecisionResult", "quantize_within_budget", "onnxruntime_scorer"]


class RandomCalibrationWarning(UserWarning):
    """INT8 calibrated on random data: the accuracy of the result means nothing."""


def calibration_spec(calibration: DataSpec | str, settings: QuantizeSettings) -> DataSpec:
    """``calibration`` as a DataSpec limited to ``settings.samples`` samples."""
    spec = calibration if isinstance(calibration, DataSpec) else DataSpec(str(calibration))
    from dataclasses import replace

    return replace(spec, limit=min(spec.limit or settings.samples, settings.samples))


def quantize_prepared(
    model: PreparedModel, calibration: DataSpec | str, settings: QuantizeSettings | dict | None = None,
    *, dataset: Dataset | None = None,
) -> QuantizeResult:
    """Quantise ``model`` to QDQ INT8 on the first ``settings.samples`` samples of ``calibration``
    (``dataset``: those samples already read)."""
    settings = check_settings(settings)
    spec = calibration_spec(calibration, settings)
    if dataset is None:
        dataset = load_dataset(spec, model.inputs)
    result = quantize_qdq(model.model, dataset, settings)
    result.notes.insert(0, f"{settings.describe()}, calibrated on {dataset.samples} samples of {spec.describe()}")
    if spec.is_random:
        warnings.warn(RANDOM_WARNING, RandomCalibrationWarning, stacklevel=2)
        result.notes.append("WARNING: " + RANDOM_WARNING)
    return result
