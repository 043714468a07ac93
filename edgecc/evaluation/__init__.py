"""Accuracy on a data set: top-1 against labels, top-1 agreement and PSNR against the FP32 reference.

Metrics read the model's first output, with samples along its first axis:
- ``top1``: percent of samples whose argmax over the last axis equals the label (output [N, C],
  or [N, 1, ..., C]);
- ``agreement``: percent of samples whose argmax equals the FP32 reference model's argmax;
- ``psnr``: 10 log10(peak^2 / MSE) in dB over all output values, peak = max - min of the reference
  outputs; for dense outputs (segmentation maps, images, features).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..data import Dataset
from ..errors import BadInputError

Metric = Literal["top1", "agreement", "psnr"]
METRICS: tuple[str, ...] = ("top1", "agreement", "psnr")


@dataclass(frozen=True)
class EvalResult:
    """Metrics on ``samples`` samples; a metric that was not asked for or cannot apply is None.
    Percentages are 0-100; ``psnr_db`` is inf when outputs equal the reference exactly."""

    samples: int
    top1: float | None = None
    agreement: float | None = None
    psnr_db: float | None = None

    def to_json(self) -> dict[str, float | int | None]:
        return {"samples": self.samples, "top1": self.top1, "agreement": self.agreement,
                "psnr_db": None if self.psnr_db is None or math.isinf(self.psnr_db) else self.psnr_db}


def run_dataset(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], dataset: Dataset, output: str) -> np.ndarray:
    """``output`` of ``run`` over every batch, padding dropped: one array with a row per sample."""
    parts = []
    for feeds, n in zip(dataset.batches, dataset.valid):
        got = run(feeds)[output]
        if got.ndim == 0:
            raise BadInputError(f"output '{output}' is a scalar; metrics need one row per sample")
        parts.append(got[:n])
    return np.concatenate(parts)


def _class_scores(outputs: np.ndarray, what: str) -> np.ndarray:
    """[N, C] scores from outputs [N, C] or [N, 1, ..., 1, C]; a dense output is an error."""
    if outputs.ndim < 2 or any(d != 1 for d in outputs.shape[1:-1]):
        raise BadInputError(
            f"{what} needs class scores shaped [N, C]; this output is {list(outputs.shape)} (for dense outputs use psnr)"
        )
    return outputs.reshape(outputs.shape[0], outputs.shape[-1])


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Percent of rows of ``outputs`` whose argmax is the label."""
    scores = _class_scores(outputs, "top-1 accuracy")
    if len(labels) != len(scores):
        raise BadInputError(f"{len(labels)} labels for {len(scores)} outputs")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise BadInputError(f"labels range over [{labels.min()}, {labels.max()}] but the model scores {scores.shape[1]} classes")
    return 100.0 * float(np.mean(scores.argmax(axis=1) == labels))


def top1_agreement(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Percent of rows whose argmax equals the reference's."""
    a, b = _class_scores(outputs, "top-1 agreement"), _class_scores(reference, "top-1 agreement")
    return 100.0 * float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def psnr(outputs: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) of ``outputs`` against ``reference``, peak = the reference's value range."""
    if outputs.shape != reference.shape:
        raise BadInputError(f"outputs {list(outputs.shape)} and reference {list(reference.shape)} differ in shape")
    ref = reference.astype(np.float64)
    mse = float(np.mean((outputs.astype(np.float64) - ref) ** 2))
    peak = float(ref.max() - ref.min()) or 1.0
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def compute_metrics(
    outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None, metrics: tuple[str, ...] | None = None
) -> EvalResult:
    """The asked ``metrics`` (default: top1 with labels, agreement with a reference whose outputs are
    class scores, psnr with a reference otherwise)."""
    if metrics is None:
        metrics = (("top1",) if labels is not None else ())
        if reference is not None:
            metrics += ("agreement",) if _is_scores(reference) else ("psnr",)
    for m in metrics:
        if m not in METRICS:
            raise BadInputError(f"unknown metric '{m}'; known: {', '.join(METRICS)}")
    if not metrics:
        raise BadInputError("nothing to measure: give labelled data (top1) or a reference model (agreement, psnr)")
    if "top1" in metrics and labels is None:
        raise BadInputError("top-1 accuracy needs labels: an .npz with a 'labels' array")
    if ("agreement" in metrics or "psnr" in metrics) and reference is None:
        raise BadInputError("agreement and psnr compare with the FP32 reference model: give one")
    return EvalResult(
        samples=len(outputs),
        top1=top1_accuracy(outputs, labels) if "top1" in metrics else None,
        agreement=top1_agreement(outputs, reference) if "agreement" in metrics else None,
        psnr_db=psnr(outputs, reference) if "psnr" in metrics else None,
    )


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
