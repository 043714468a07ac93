"""INT8 post-training quantisation (QDQ ONNX) calibrated on user data.

:func:`quantize_prepared` is what ``edgecc quantize`` and ``compile --precision int8`` use: it reads
the calibration data (:mod:`edgecc.data`: images, .npz/.npy, or ``random`` with a warning) for the
model's inputs and quantises with :func:`quantize_qdq`, or with :func:`quantize_accurate` when the settings
ask for cross-layer equalisation or bias correction. Given evaluation data and an accuracy budget, it then
keeps in float the fewest layers that bring the model within it (:func:`quantize_within_budget`) and names
them in the model's metadata (:data:`FLOAT_LAYERS_KEY`).
"""

from __future__ import annotations

import json
import math
import time
import warnings

from ...data import RANDOM_WARNING, Dataset, DataSpec, load_dataset
from ...errors import BadInputError
from ..io import PreparedModel
from .accurate import AccurateQuantizeResult, quantize_accurate
from .mixed import MixedPrecisionResult, onnxruntime_scorer, quantize_within_budget
from .qdq import QuantizeResult, QuantizeSettings, check_settings, quantize_qdq

__all__ = ["QuantizeResult", "QuantizeSettings", "RandomCalibrationWarning", "check_settings", "quantize_qdq",
           "quantize_prepared", "calibration_spec", "AccurateQuantizeResult", "quantize_accurate",
           "MixedPrecisionResult", "quantize_within_budget", "onnxruntime_scorer", "FLOAT_LAYERS_KEY", "FLOAT_LAYERS_NOTE",
           "float_layers_noted"]

#: model metadata_props key listing (JSON) the layers an accuracy budget kept in float in a QDQ model
FLOAT_LAYERS_KEY = "edgecc.float_layers"
#: the note (result and artifact manifest) that lists them, followed by the JSON list
FLOAT_LAYERS_NOTE = "layers kept in float: "


class RandomCalibrationWarning(UserWarning):
    """INT8 calibrated on random data: the accuracy of the result means nothing."""


def calibration_spec(calibration: DataSpec | str, settings: QuantizeSettings) -> DataSpec:
    """``calibration`` as a DataSpec limited to ``settings.samples`` samples."""
    spec = calibration if isinstance(calibration, DataSpec) else DataSpec(str(calibration))
    from dataclasses import replace

    return replace(spec, limit=min(spec.limit or settings.samples, settings.samples))


def check_budget(eval_data: DataSpec | str | None, max_drop: float | None) -> DataSpec | None:
    """The evaluation data of an accuracy budget as a DataSpec; BadInputError unless both or neither are given."""
    if (eval_data is None) != (max_drop is None):
        raise BadInputError("--eval DATA and --max-accuracy-drop POINTS go together: the budget is measured on that "
                            "data (give both, or neither for plain INT8)")
    if max_drop is None:
        return None
    if not (isinstance(max_drop, (int, float)) and math.isfinite(max_drop) and max_drop >= 0):
        raise BadInputError(f"--max-accuracy-drop must be a number of points >= 0, got {max_drop}")
    spec = eval_data if isinstance(eval_data, DataSpec) else DataSpec(str(eval_data))
    if spec.is_random:
        raise BadInputError("--eval needs real data (an .npz with inputs and labels, or images), not random")
    return spec


def quantize_prepared(
    model: PreparedModel, calibration: DataSpec | str, settings: QuantizeSettings | dict | None = None,
    *, dataset: Dataset | None = None, eval_data: DataSpec | str | None = None, max_drop: float | None = None,
    progress=None,
) -> QuantizeResult:
    """Quantise ``model`` to QDQ INT8 on the first ``settings.samples`` samples of ``calibration``
    (``dataset``: those samples already read). With ``eval_data`` and ``max_drop`` (points of top-1 against
    its labels, else of top-1 agreement with FP32), layers are kept in float until the drop is within
    ``max_drop``: ``result.mixed`` says which and what it measured (``progress``: see mixed.Progress)."""
    settings = check_settings(settings)
    eval_spec = check_budget(eval_data, max_drop)
    spec = calibration_spec(calibration, settings)
    if dataset is None:
        dataset = load_dataset(spec, model.inputs)
    if settings.accurate:
        result = quantize_accurate(model.model, dataset, settings, equalization=settings.equalize,
                                   bias_correction=settings.bias_correction).quantized
    else:
        result = quantize_qdq(model.model, dataset, settings)
    result.notes.insert(0, f"{settings.describe()}, calibrated on {dataset.samples} samples of {spec.describe()}")
    if spec.is_random:
        warnings.warn(RANDOM_WARNING, RandomCalibrationWarning, stacklevel=2)
        result.notes.append("WARNING: " + RANDOM_WARNING)
    if eval_spec is not None:
        _within_budget(result, model, dataset, load_dataset(eval_spec, model.inputs), float(max_drop), settings, progress)
    return result


def _within_budget(result: QuantizeResult, model: PreparedModel, calibration: Dataset, eval_data: Dataset,
                   max_drop: float, settings: QuantizeSettings, progress=None) -> None:
    """Replace ``result.model`` by the mixed-precision model within ``max_drop`` (float layers in its metadata)."""
    if result.float_model is None:
        raise BadInputError(f"{model.source}: an accuracy budget needs the model in memory; models over 1 GiB of "
                            "weights (stored as external data) are not supported")
    t0 = time.perf_counter()
    mixed = quantize_within_budget(result.float_model, calibration, eval_data, max_drop, settings,
                                   quantized=result.model, progress=progress)
    mixed.model.metadata_props[FLOAT_LAYERS_KEY] = json.dumps(mixed.float_layers)
    result.model, result.mixed = mixed.model, mixed
    result.quantized_nodes = sum(1 for n in mixed.model.graph.all_nodes() if n.op_type == "QuantizeLinear")
    result.seconds += time.perf_counter() - t0
    result.notes += [mixed.describe(), FLOAT_LAYERS_NOTE + json.dumps(mixed.float_layers), *mixed.notes]


def float_layers_noted(notes: list[str]) -> list[str] | None:
    """The layers an accuracy budget kept in float, read from ``notes`` (a result's or a manifest's); None: no budget."""
    found = [n for n in notes if n.startswith(FLOAT_LAYERS_NOTE)]
    return json.loads(found[-1][len(FLOAT_LAYERS_NOTE):]) if found else None
