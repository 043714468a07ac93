"""The metrics edgecc measures accuracy with: built in, from the ``edgecc.metrics`` entry-point group, or named
``module:function`` on the command line (``--metric mypkg.detection:map50``).

A metric is a function ``fn(outputs, labels, reference) -> float`` over the model's first output (samples along
its first axis), the data set's labels (or None) and the FP32 reference model's outputs on the same samples (or
None). It may carry two attributes: ``needs`` ("labels", "reference" or "either"; default "labels") and
``higher_is_better`` (default True), which decides the sign of an accuracy drop. See docs/metrics.md.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal

import numpy as np

from ..errors import BadInputError

ENTRY_POINT_GROUP = "edgecc.metrics"
MetricFn = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None"], float]
Needs = Literal["labels", "reference", "either"]


@dataclass(frozen=True)
class Metric:
    """A named metric: its function, what it needs, and whether higher values are better."""

    name: str
    fn: MetricFn
    needs: Needs = "labels"
    higher_is_better: bool = True

    def applies(self, labels: np.ndarray | None, reference: np.ndarray | None) -> str | None:
        """Why it cannot be measured with what is there (None: it can)."""
        if self.needs == "labels" and labels is None:
            return f"metric {self.name} needs labels: an .npz with a 'labels' array"
        if self.needs == "reference" and reference is None:
            return f"metric {self.name} compares with the FP32 reference model: give one"
        if self.needs == "either" and labels is None and reference is None:
            return f"metric {self.name} needs labels or a reference model"
        return None

    def __call__(self, outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None) -> float:
        return float(self.fn(outputs, labels, reference))


def _class_scores(outputs: np.ndarray, what: str) -> np.ndarray:
    """[N, C] scores from outputs [N, C] or [N, 1, ..., 1, C]; a dense output is an error."""
    if outputs.ndim < 2 or any(d != 1 for d in outputs.shape[1:-1]):
        raise BadInputError(
            f"{what} needs class scores shaped [N, C]; this output is {list(outputs.shape)} (for dense outputs use psnr)"
        )
    return outputs.reshape(outputs.shape[0], outputs.shape[-1])


def _check_labels(scores: np.ndarray, labels: np.ndarray) -> None:
    if len(labels) != len(scores):
        raise BadInputError(f"{len(labels)} labels for {len(scores)} outputs")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise BadInputError(f"labels range over [{labels.min()}, {labels.max()}] but the model scores {scores.shape[1]} classes")


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Percent of rows of ``outputs`` whose argmax is the label."""
    scores = _class_scores(outputs, "top-1 accuracy")
    _check_labels(scores, labels)
    return 100.0 * float(np.mean(scores.argmax(axis=1) == labels))


def top5_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Percent of rows whose five highest scores include the label (all of them with fewer than five classes)."""
    scores = _class_scores(outputs, "top-5 accuracy")
    _check_labels(scores, labels)
    k = min(5, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return 100.0 * float(np.mean((top == labels[:, None]).any(axis=1)))


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


def mean_cosine(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of each sample's output with the reference's (1.0: same direction)."""
    if outputs.shape != reference.shape:
        raise BadInputError(f"outputs {list(outputs.shape)} and reference {list(reference.shape)} differ in shape")
    a = outputs.reshape(len(outputs), -1).astype(np.float64)
    b = reference.reshape(len(reference), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(norms > 0, (a * b).sum(axis=1) / np.where(norms > 0, norms, 1.0), 1.0)
    return float(cos.mean())


BUILTIN: dict[str, Metric] = {m.name: m for m in (
    Metric("top1", lambda o, lab, ref: top1_accuracy(o, lab)),
    Metric("top5", lambda o, lab, ref: top5_accuracy(o, lab)),
    Metric("agreement", lambda o, lab, ref: top1_agreement(o, ref), needs="reference"),
    Metric("psnr", lambda o, lab, ref: psnr(o, ref), needs="reference"),
    Metric("cosine", lambda o, lab, ref: mean_cosine(o, ref), needs="reference"),
)}


def _from_function(name: str, fn: object) -> Metric:
    if not callable(fn):
        raise BadInputError(f"metric {name}: {fn!r} is not a function")
    needs = getattr(fn, "needs", "labels")
    if needs not in ("labels", "reference", "either"):
        raise BadInputError(f"metric {name}: its 'needs' attribute must be labels, reference or either, not {needs!r}")
    return Metric(name, fn, needs, bool(getattr(fn, "higher_is_better", True)))  # type: ignore[arg-type]


def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_metrics() -> list[str]:
    return list(BUILTIN) + sorted(n for n in _plugins() if n not in BUILTIN)


def get_metric(name: str) -> Metric:
    """A built-in metric, one from the ``edgecc.metrics`` entry points, or ``module:function`` imported here."""
    if name in BUILTIN:
        return BUILTIN[name]
    plugin = _plugins().get(name)
    if plugin is not None:
        return _from_function(name, plugin.load())
    module, sep, attr = name.partition(":")
    if not sep:
        raise BadInputError(f"unknown metric '{name}'; known: {', '.join(known_metrics())}, or MODULE:FUNCTION")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        raise BadInputError(f"metric {name}: cannot import {module}: {e}") from None
    except AttributeError:
        raise BadInputError(f"metric {name}: {module} has no '{attr}'") from None
    return _from_function(name, fn)
