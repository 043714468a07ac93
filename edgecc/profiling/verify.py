"""Compare a backend's outputs with the onnxruntime reference, with tolerances set per precision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Outputs pass when cosine >= min_cosine and max_abs_error <= max_rel_error * max|reference|."""

    min_cosine: float
    max_rel_error: float


# Why these: FP32 backends reorder sums (~1e-6 relative); BF16 keeps 8 mantissa bits (~4e-3 per op,
# compounding through deep nets); FP16 keeps 11; INT8 is checked by its accuracy, this only catches breakage.
TOLERANCES = {
    "fp32": Tolerance(min_cosine=0.99999, max_rel_error=1e-3),
    "fp16": Tolerance(min_cosine=0.999, max_rel_error=0.05),
    "bf16": Tolerance(min_cosine=0.99, max_rel_error=0.15),
    "int8": Tolerance(min_cosine=0.95, max_rel_error=0.5),
}


@dataclass(frozen=True)
class OutputError:
    """Errors over all outputs: the worst max/mean absolute error and the lowest cosine similarity."""

    max_abs_error: float
    mean_abs_error: float
    cosine: float
    max_rel_error: float

    def within(self, tol: Tolerance) -> bool:
        return self.cosine >= tol.min_cosine and self.max_rel_error <= tol.max_rel_error

    def describe_failure(self, precision: str) -> str:
        tol = TOLERANCES[precision]
        return (
            f"outputs outside the {precision} tolerance: cosine {self.cosine:.6f} (min {tol.min_cosine}), "
            f"max abs error {self.max_abs_error:.3g} = {self.max_rel_error:.3g} of the reference's range (max {tol.max_rel_error})"
        )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def compare_outputs(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> OutputError:
    """Compare outputs by name; a missing output, a shape change or a non-finite value is total failure."""
    max_abs = mean_abs = max_rel = 0.0
    cosine = 1.0
    for name, ref in reference.items():
        got = actual.get(name)
        if got is None or got.shape != ref.shape:
            return OutputError(float("inf"), float("inf"), 0.0, float("inf"))
        r = ref.astype(np.float64).ravel()
        g = got.astype(np.float64).ravel()
        if r.size == 0:
            continue
        if not np.all(np.isfinite(g)):
            return OutputError(float("inf"), float("inf"), 0.0, float("inf"))
        diff = np.abs(r - g)
        scale = float(np.abs(r).max()) or 1.0
        max_abs = max(max_abs, float(diff.max()))
        mean_abs = max(mean_abs, float(diff.mean()))
        max_rel = max(max_rel, float(diff.max()) / scale)
        if ref.dtype.kind == "f":
            cosine = min(cosine, _cosine(r, g))
    return OutputError(max_abs, mean_abs, cosine, max_rel)


def reference_outputs(model_path: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of onnxruntime (CPU, basic graph optimisations only) on the model at ``model_path``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    session = ort.InferenceSession(model_path, sess_options=so, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))
