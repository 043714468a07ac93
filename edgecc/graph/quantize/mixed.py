"""Accuracy-aware mixed precision: the fewest layers kept in float that bring an INT8 model within an accuracy budget.

1. Score the FP32 model and the all-INT8 QDQ model with ``evaluate`` (percent, higher is better: top-1
   with labels, top-1 agreement with FP32 without). Within ``max_drop`` points already: done.
2. Rank the INT8 layers by sensitivity: the default proxy reverts each layer alone to float and
   measures, with onnxruntime on the first ``rank_samples`` evaluation samples, how much closer the
   model's first output gets to the FP32 one (mean squared error); ``rank_by="int8_alone"`` measures each
   layer INT8 in an otherwise float model instead (on EfficientNet-Lite0, where the error is spread over
   dozens of layers, it reached the same budget with 43 layers in float instead of 58); ``rank_by="metric"``
   uses ``evaluate`` itself per layer (exact, one full evaluation per layer).
3. The shortest prefix of that ranking kept in float that brings the drop within the budget: prefixes of
   1, 2, 4, 8... layers until one is within it ("add"), then bisection between the last two ("bisect"), so
   a model that needs k layers costs about 2 log2(k) evaluations instead of k (EfficientNet-Lite0 needed
   dozens of layers, at one evaluation each in a greedy loop).
4. Then up to :data:`MAX_TRY_REMOVE` layers kept in float are tried back in INT8 (least sensitive first) and
   stay INT8 when the drop stays within the budget, so the ranking's mistakes do not stay in float.

Reverting a layer is a graph edit of the QDQ model (:mod:`.revert`), so the result runs on every
backend that reads QDQ ONNX: ``evaluate`` may run it with onnxruntime or OpenVINO.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx_ir as ir

from ...data import Dataset
from ...errors import BadInputError
from ._session import outputs
from .qdq import QuantizeSettings, quantize_qdq
from .revert import keep_in_float, quantized_layers

Scorer = Callable[[ir.Model], float]
#: progress(what, done, total or None): called as layers are ranked and as candidate models are evaluated
Progress = Callable[[str, int, "int | None"], None]
#: layers of the chosen prefix tried back in INT8, least sensitive first (each costs one evaluation)
MAX_TRY_REMOVE = 8


@dataclass(frozen=True)
class Step:
    """One evaluation of the search: the layers in float then, the score (percent) and the drop (points)."""

    float_layers: tuple[str, ...]
    score: float
    drop: float
    action: str  # "int8" (nothing in float), "add" / "bisect" (a prefix of the ranking), "try-remove" (back to INT8)

    def to_json(self) -> dict[str, object]:
        return {"float_layers": list(self.float_layers), "score": self.score, "drop": self.drop, "action": self.action}


@dataclass
class MixedPrecisionResult:
    """The model with ``float_layers`` in float and the rest INT8; ``drop`` = FP32 score - its score (points)."""

    model: ir.Model
    float_layers: list[str]
    drop: float
    steps: list[Step]
    reference_score: float
    int8_score: float
    score: float
    within_budget: bool
    sensitivity: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        kept = ", ".join(self.float_layers) if self.float_layers else "none"
        return (f"mixed precision: FP32 {self.reference_score:.2f}%, all INT8 {self.int8_score:.2f}%, result "
                f"{self.score:.2f}% (drop {self.drop:.2f} points, {'within' if self.within_budget else 'OVER'} budget) "
                f"with {len(self.float_layers)} layers in float: {kept}; {len(self.steps)} evaluations")


def onnxruntime_scorer(eval_data: Dataset, reference: ir.Model | None = None) -> Scorer:
    """Percent top-1 of a model run by onnxruntime on ``eval_data``: against its labels, else agreement with
    ``reference``'s (the FP32 model) top-1."""
    from ...evaluation import top1_accuracy, top1_agreement

    if eval_data.labels is not None:
        return lambda m: top1_accuracy(outputs(m, eval_data), eval_data.labels)
    if reference is None:
        raise BadInputError("evaluation data without labels needs the FP32 model to measure agreement with")
    ref = outputs(reference, eval_data)
    return lambda m: top1_agreement(outputs(m, eval_data), ref)


def _subset(data: Dataset, samples: int) -> Dataset:
    batches, valid, n = [], [], 0
    for b, v in zip(data.batches, data.valid):
        if n >= samples:
            break
        batches.append(b)
        valid.append(v)
        n += v
    return Dataset(batches, valid, None, data.source)


def rank_by_output_error(qmodel: ir.Model, float_model: ir.Model, layers: list[str], data: Dataset,
                         progress: Progress | None = None) -> list[tuple[str, float]]:
    """(layer, sensitivity) most sensitive first: how much the MSE of the first output against FP32 falls
    (relative to the all-INT8 MSE, 0-1) when only that layer is kept in float."""
    ref = outputs(float_model, data).astype(np.float64)
    base = float(np.mean((outputs(qmodel, data) - ref) ** 2)) or 1e-30
    scores = []
    for i, name in enumerate(layers):
        got = outputs(keep_in_float(qmodel, float_model, [name]).model, data)
        scores.append((name, (base - float(np.mean((got - ref) ** 2))) / base))
        if progress is not None:
            progress("ranking layers", i + 1, len(layers))
    return sorted(scores, key=lambda s: -s[1])


def rank_by_int8_alone(qmodel: ir.Model, float_model: ir.Model, layers: list[str], data: Dataset,
                       progress: Progress | None = None) -> list[tuple[str, float]]:
    """(layer, sensitivity) most sensitive first: the MSE of the first output against FP32, relative to FP32's
    mean square, when that layer alone is INT8 (every other candidate in float). Unlike reverting one layer of
    the all-INT8 model, a layer's own error is not drowned by the others' (deep nets spread it over dozens)."""
    ref = outputs(float_model, data).astype(np.float64)
    scale = float(np.mean(ref ** 2)) or 1e-30
    scores = []
    for i, name in enumerate(layers):
        got = outputs(keep_in_float(qmodel, float_model, [n for n in layers if n != name]).model, data)
        scores.append((name, float(np.mean((got - ref) ** 2)) / scale))
        if progress is not None:
            progress("ranking layers", i + 1, len(layers))
    return sorted(scores, key=lambda s: -s[1])


def rank_by_metric(qmodel: ir.Model, float_model: ir.Model, layers: list[str], evaluate: Scorer
                   ) -> list[tuple[str, float]]:
    """(layer, score gained in points by keeping only that layer in float), most sensitive first."""
    base = evaluate(qmodel)
    scores = [(n, evaluate(keep_in_float(qmodel, float_model, [n]).model) - base) for n in layers]
    return sorted(scores, key=lambda s: -s[1])


def shortest_prefix(count: int, drop_of: Callable[[int, str], float], max_drop: float) -> int | None:
    """The smallest n in 1..count with ``drop_of(n, action) <= max_drop``, for a drop that falls as n grows:
    n = 1, 2, 4... until one is within (action "add"), then bisection below it ("bisect"). None: not even
    n = count is within (it was measured)."""
    failing, n = 0, 1
    while count:
        n = min(n, count)
        if drop_of(n, "add") <= max_drop:
            break
        failing = n
        if n == count:
            return None
        n *= 2
    else:
        return None
    within = n
    while within - failing > 1:
        mid = (failing + within) // 2
        if drop_of(mid, "bisect") <= max_drop:
            within = mid
        else:
            failing = mid
    return within


def quantize_within_budget(
    model: ir.Model, calibration: Dataset, eval_data: Dataset, max_drop: float,
    settings: QuantizeSettings = QuantizeSettings(), *, evaluate: Scorer | None = None,
    quantized: ir.Model | None = None, rank_by: Literal["output_error", "int8_alone", "metric"] = "output_error",
    rank_samples: int = 128, layers: list[str] | None = None, progress: Progress | None = None,
) -> MixedPrecisionResult:
    """INT8 QDQ ``model`` with the fewest layers in float that keep the drop of ``evaluate`` (percent,
    default onnxruntime top-1 / agreement on ``eval_data``) within ``max_drop`` points of the FP32 model.

    ``quantized``: the QDQ model to start from (e.g. after equalisation and bias correction, made from
    ``model``); default: ``quantize_qdq(model, calibration, settings)``. ``layers``: the candidates
    (default: every INT8 layer but data movement). Evaluations are listed in ``steps``."""
    if not (isinstance(max_drop, (int, float)) and math.isfinite(max_drop) and max_drop >= 0):
        raise BadInputError(f"the maximum accuracy drop must be a finite number of points >= 0, got {max_drop}")
    evaluate = evaluate or onnxruntime_scorer(eval_data, model)
    qmodel = quantized if quantized is not None else quantize_qdq(model, calibration, settings).model
    reference = evaluate(model)
    int8 = evaluate(qmodel)
    steps = [Step((), int8, reference - int8, "int8")]
    result = MixedPrecisionResult(qmodel, [], reference - int8, steps, reference, int8, int8, reference - int8 <= max_drop)
    if result.within_budget:
        return result
    candidates = layers if layers is not None else quantized_layers(qmodel)
    if rank_by == "metric":
        ranking = rank_by_metric(qmodel, model, candidates, evaluate)
    elif rank_by == "int8_alone":
        ranking = rank_by_int8_alone(qmodel, model, candidates, _subset(eval_data, rank_samples), progress)
    else:
        ranking = rank_by_output_error(qmodel, model, candidates, _subset(eval_data, rank_samples), progress)
    result.sensitivity = ranking
    names = [n for n, _ in ranking]

    def attempt(count: int, action: str) -> float:
        if progress is not None:
            progress(f"evaluating with {count} of {len(names)} layers in float", len(steps), None)
        reverted = keep_in_float(qmodel, model, names[:count])
        score = evaluate(reverted.model)
        steps.append(Step(tuple(names[:count]), score, reference - score, action))
        if reference - score <= max_drop or count == len(names):
            tried[count] = (reverted, score)
        return reference - score

    tried: dict[int, tuple[object, float]] = {}
    within = shortest_prefix(len(names), attempt, max_drop)
    chosen = names[:within if within is not None else len(names)]
    best = (qmodel, int8)
    if chosen:
        reverted, score = tried[len(chosen)]
        best, result.notes = (reverted.model, score), reverted.notes
    for name in list(reversed(chosen))[:MAX_TRY_REMOVE]:
        if len(chosen) == 1 or reference - best[1] > max_drop:
            break
        trial = [n for n in chosen if n != name]
        if progress is not None:
            progress(f"trying {name} back in INT8", len(steps), None)
        reverted = keep_in_float(qmodel, model, trial)
        score = evaluate(reverted.model)
        steps.append(Step(tuple(trial), score, reference - score, "try-remove"))
        if reference - score <= max_drop:
            chosen, best = trial, (reverted.model, score)
    result.model, result.score = best
    result.float_layers = chosen
    result.drop = reference - best[1]
    result.within_budget = result.drop <= max_drop
    return result
