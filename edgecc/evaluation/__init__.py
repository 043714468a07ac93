"""Accuracy on a data set: the model's outputs collected, measured by metrics (edgecc.evaluation.metrics).

Metrics read the model's first output, with samples along its first axis. Built in:
- ``top1`` / ``top5``: percent of samples whose best (five best) scores over the last axis hold the label
  (output [N, C], or [N, 1, ..., C]);
- ``agreement``: percent of samples whose argmax equals the FP32 reference model's argmax;
- ``psnr``: 10 log10(peak^2 / MSE) in dB over all output values, peak = max - min of the reference
  outputs; for dense outputs (segmentation maps, images, features);
- ``cosine``: mean per-sample cosine similarity with the reference's outputs.
Others plug in: the ``edgecc.metrics`` entry-point group, or ``module:function``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..data import Dataset
from ..errors import BadInputError
from .metrics import BUILTIN, Metric, get_metric, known_metrics, psnr, top1_accuracy, top1_agreement, top5_accuracy

__all__ = ["BUILTIN", "EvalResult", "Metric", "compute_metrics", "default_metrics", "evaluate_artifact", "get_metric", "known_metrics",
           "onnx_outputs", "psnr", "run_dataset", "top1_accuracy", "top1_agreement", "top5_accuracy"]


@dataclass(frozen=True)
class EvalResult:
    """Metrics on ``samples`` samples; a metric that was not asked for or cannot apply is None.
    Percentages are 0-100; ``psnr_db`` is inf when outputs equal the reference exactly. ``values`` holds every
    metric measured, by name (built-in and plugged-in)."""

    samples: int
    top1: float | None = None
    agreement: float | None = None
    psnr_db: float | None = None
    values: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        finite = {k: (None if math.isinf(v) else v) for k, v in self.values.items()}
        return {"samples": self.samples, "top1": self.top1, "agreement": self.agreement,
                "psnr_db": None if self.psnr_db is None or math.isinf(self.psnr_db) else self.psnr_db,
                "metrics": finite}


def run_dataset(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], dataset: Dataset, output: str) -> np.ndarray:
    """``output`` of ``run`` over every batch, padding dropped: one array with a row per sample."""
    parts = []
    for feeds, n in zip(dataset.batches, dataset.valid):
        got = run(feeds)[output]
        if got.ndim == 0:
            raise BadInputError(f"output '{output}' is a scalar; metrics need one row per sample")
        parts.append(got[:n])
    return np.concatenate(parts)


def default_metrics(labels: np.ndarray | None, reference: np.ndarray | None) -> tuple[str, ...]:
    """top1 with labels; with a reference, agreement when its outputs are class scores, else psnr."""
    metrics = ("top1",) if labels is not None else ()
    if reference is not None:
        metrics += ("agreement",) if _is_scores(reference) else ("psnr",)
    return metrics


def compute_metrics(
    outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None, metrics: tuple[str, ...] | None = None
) -> EvalResult:
    """The asked ``metrics`` (default: top1 with labels, agreement with a reference whose outputs are
    class scores, psnr with a reference otherwise)."""
    if metrics is None:
        metrics = default_metrics(labels, reference)
    found = [get_metric(m) for m in metrics]  # an unknown name fails here with the known ones
    if not found:
        raise BadInputError("nothing to measure: give labelled data (top1) or a reference model (agreement, psnr)")
    for m in found:
        why = m.applies(labels, reference)
        if why is not None:
            raise BadInputError(why if m.name != "top1" else "top-1 accuracy needs labels: an .npz with a 'labels' array")
    values = {m.name: m(outputs, labels, reference) for m in found}
    return EvalResult(samples=len(outputs), top1=values.get("top1"), agreement=values.get("agreement"),
                      psnr_db=values.get("psnr"), values=values)


def _is_scores(outputs: np.ndarray) -> bool:
    return outputs.ndim >= 2 and all(d == 1 for d in outputs.shape[1:-1])


def first_output(names: list[str]) -> str:
    if not names:
        raise BadInputError("the model has no outputs to measure")
    return names[0]


def evaluate_artifact(artifact_dir: str, dataset: Dataset, reference: np.ndarray | None,
                      metrics: tuple[str, ...] | None = None) -> EvalResult:
    """Run the compiled artifact at ``artifact_dir`` over ``dataset`` (here, with its backend) and measure it."""
    from ..artifact import load_artifact
    from ..backends import get_backend

    artifact = load_artifact(artifact_dir)
    backend = get_backend(artifact.manifest.backend)
    backend.require()
    with backend.open_runner(artifact) as runner:
        outputs = run_dataset(runner.run, dataset, first_output([s.name for s in artifact.outputs]))
    return compute_metrics(outputs, dataset.labels, reference, metrics)


def onnx_outputs(model_path: str, dataset: Dataset) -> np.ndarray:
    """The first output of the ONNX model at ``model_path`` on ``dataset``, run by onnxruntime on the CPU
    (basic graph optimisations: the same settings as the verification reference)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    session = ort.InferenceSession(model_path, sess_options=so, providers=["CPUExecutionProvider"])
    name = first_output([o.name for o in session.get_outputs()])
    return run_dataset(lambda feeds: dict(zip([name], session.run([name], feeds))), dataset, name)
