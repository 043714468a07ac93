"""Roofline figures: achieved GFLOP/s against the target's peak.

For ``host`` the peak is measured, not assumed: a short FP32 GEMM microbenchmark, cached per
machine so it runs once. It uses onnxruntime's MatMul (MLAS, which picks AVX-512 / AVX2 / NEON
kernels for the CPU) on every core this process may use; numpy's bundled BLAS was measured here at
a quarter of that on an AVX-512 CPU, below what onnxruntime reaches on ResNet-50, so it is no peak.
The best run of many is kept: on a shared machine the peak is only ever underestimated.
"""

from __future__ import annotations

import json
import time

import numpy as np

from ..atomic import write_atomic
from ..cache import cache_dir

GEMM_N = 1024  # 2 GFLOP per product: long enough to saturate the FMA units, short enough to repeat


def _cache_key() -> str:
    from ..targets.host import _cpuinfo, available_cores

    name, _, _ = _cpuinfo()
    import onnxruntime

    return f"{name}|{available_cores()}|onnxruntime {onnxruntime.__version__}"


def measure_gemm_gflops(seconds: float = 1.0, n: int = GEMM_N) -> float:
    """Best FP32 GFLOP/s of an n x n x n MatMul in onnxruntime over about ``seconds`` of repeats."""
    import onnx.helper as oh
    import onnxruntime as ort
    from onnx import TensorProto, numpy_helper

    from ..backends.base import local_threads

    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "b")
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [oh.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])], [oh.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
        initializer=[b],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_operatorsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = local_threads(1 << 16)
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {"a": rng.standard_normal((n, n), dtype=np.float32)}
    session.run(None, feeds)  # warm the thread pool and caches
    best = float("inf")
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def host_peak_gflops(*, measure: bool = True, again: bool = False) -> float | None:
    """This machine's measured FP32 peak (GFLOP/s).

    Without ``measure``, the cached value (None if there is none). With ``measure``, the cached value
    when there is one, else a measurement. With ``again``, a new measurement too, and the best of it
    and the cached value is kept: a busy machine only ever lowers a measurement, so the best one is
    the closest to the truth.
    """
    path = cache_dir("host") / "gemm_peak.json"
    key = _cache_key()
    cached_gflops = 0.0
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("key") == key and cached.get("gflops", 0) > 0:
            cached_gflops = float(cached["gflops"])
    except (OSError, ValueError):
        pass  # absent or damaged: measure again
    if cached_gflops and not again:
        return cached_gflops
    if not measure and not again:
        return None
    gflops = max(cached_gflops, round(measure_gemm_gflops(), 1))
    write_atomic(path, json.dumps({"key": key, "gflops": gflops}))
    return gflops


def roofline_fraction(flops: int | None, latency_ms: float | None, peak_gflops: float | None) -> float | None:
    """Achieved / peak: FLOPs per second at ``latency_ms`` over ``peak_gflops`` (None when unknown)."""
    if not flops or not latency_ms or not peak_gflops:
        return None
    return (flops / (latency_ms * 1e6)) / peak_gflops
