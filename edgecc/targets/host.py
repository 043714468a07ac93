"""Every fact about the machine edgecc runs on, in one place, and the ``host`` target built from them.

The facts: the CPU model and its ISA flags (/proc/cpuinfo), the cores this process may use (its affinity
mask), the threads to run a target's model with here, the memory, and the FP32 peak. The peak is measured,
not assumed: a short FP32 GEMM microbenchmark, cached per machine so it runs once. It uses onnxruntime's
MatMul (MLAS, which picks AVX-512 / AVX2 / NEON kernels for the CPU) on every core this process may use;
numpy's bundled BLAS was measured here at a quarter of that on an AVX-512 CPU, below what onnxruntime
reaches on ResNet-50, so it is no peak. The best run of many is kept: on a shared machine the peak is only
ever underestimated. Without a measurement the peak is estimated from cores x clock x FLOP/cycle.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time

from ..atomic import write_atomic
from ..cache import cache_dir
from .models import CpuTarget

GEMM_N = 1024  # 2 GFLOP per product: long enough to saturate the FMA units, short enough to repeat
# CPU flags that decide which kernels a backend can use; everything else in /proc/cpuinfo is noise here.
RELEVANT_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
    "avx512_fp16", "neon", "asimd", "asimddp", "sve", "i8mm", "bf16",
)


def _cpuinfo() -> tuple[str, set[str], float | None]:
    """(model name, flags, MHz) from /proc/cpuinfo; empty on systems without it."""
    name, flags, mhz = platform.processor() or platform.machine(), set(), None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key in ("model name", "Model") and value:
                    name = value
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                elif key == "cpu MHz" and mhz is None:
                    mhz = float(value)
    except OSError:
        pass
    return name, flags, mhz


def cpu_model() -> str:
    """This machine's CPU model name, e.g. 'Intel(R) Xeon(R) Processor'."""
    return _cpuinfo()[0]


def host_arch() -> str:
    """This machine's architecture as edgecc names it: x86_64 or aarch64."""
    m = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(m, m)
    if arch not in ("x86_64", "aarch64"):
        arch = "x86_64" if "86" in arch else "aarch64"
    return arch


def isa_flags() -> tuple[str, ...]:
    """The ISA extensions of this CPU that matter for kernels (sorted), e.g. ('avx2', 'avx512f', 'fma')."""
    _, flags, _ = _cpuinfo()
    isa = {f for f in flags if f in RELEVANT_FLAGS}
    if host_arch() == "aarch64":
        isa |= {"neon"} if "asimd" in flags else set()
        isa |= {"dotprod"} if "asimddp" in flags else set()
    return tuple(sorted(isa))


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def local_threads(target_cores: int) -> int:
    """Threads for running a model here: the target's cores, never more than this process may use."""
    return max(1, min(target_cores, available_cores()))


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _flops_per_cycle(isa: set[str], arch: str) -> int:
    """FP32 FLOPs per cycle per core, assuming two FMA pipes of the widest vector unit (an estimate)."""
    if "avx512f" in isa:
        return 64
    if "avx2" in isa and "fma" in isa:
        return 32
    if arch == "aarch64":
        return 16
    return 8


def _llvm_mcpu(isa: set[str], vendor_amd: bool, arch: str) -> str:
    if arch == "aarch64":
        return "generic"
    if "amx_tile" in isa:
        return "sapphirerapids"
    if "avx512f" in isa:
        return "znver4" if vendor_amd else "skylake-avx512"
    if "avx2" in isa:
        return "znver2" if vendor_amd else "haswell"
    return "x86-64"


def measure_gemm_gflops(seconds: float = 1.0, n: int = GEMM_N) -> float:
    """Best FP32 GFLOP/s of an n x n x n MatMul in onnxruntime over about ``seconds`` of repeats."""
    import numpy as np
    import onnx.helper as oh
    import onnxruntime as ort
    from onnx import TensorProto, numpy_helper

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
    so.intra_op_num_threads = available_cores()
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


def _peak_cache_key() -> str:
    import onnxruntime

    return f"{cpu_model()}|{available_cores()}|onnxruntime {onnxruntime.__version__}"


def host_peak_gflops(*, measure: bool = True, again: bool = False) -> float | None:
    """This machine's measured FP32 peak (GFLOP/s).

    Without ``measure``, the cached value (None if there is none). With ``measure``, the cached value
    when there is one, else a measurement. With ``again``, a new measurement too, and the best of it
    and the cached value is kept: a busy machine only ever lowers a measurement, so the best one is
    the closest to the truth.
    """
    path = cache_dir("host") / "gemm_peak.json"
    key = _peak_cache_key()
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


def measure_peak_again() -> float:
    """Measure the FP32 peak again (about 1 s; the best measurement so far is kept) and let ``host`` carry it."""
    gflops = host_peak_gflops(again=True)
    detect_host.cache_clear()
    return gflops  # type: ignore[return-value]


@functools.cache
def detect_host() -> CpuTarget:
    """The ``host`` target: this machine's CPU, cores available to this process, ISA and memory."""
    name, _, mhz = _cpuinfo()
    arch = host_arch()
    cores = available_cores()
    isa = set(isa_flags())
    ghz = (mhz or 2000.0) / 1000.0
    measured = host_peak_gflops(measure=False)
    estimate = round(cores * ghz * _flops_per_cycle(isa, arch), 1)
    peak_source = (
        f"measured: onnxruntime FP32 MatMul {GEMM_N}x{GEMM_N}x{GEMM_N} on {cores} cores, best run"
        if measured
        else f"estimate: {cores} cores x {ghz:.2f} GHz x {_flops_per_cycle(isa, arch)} FLOP/cycle"
    )
    memory = memory_bytes()
    vendor_amd = "AMD" in name.upper()
    return CpuTarget(
        name="host",
        description=f"this machine: {name}, {cores} cores available, {arch}",
        device_class="desktop",
        preferred_backend="openvino" if arch == "x86_64" else "onnxruntime",
        arch=arch,  # type: ignore[arg-type]
        cpu=name,
        cores=cores,
        isa=tuple(sorted(isa)),
        peak_fp32_gflops=measured or estimate,
        peak_source=peak_source,
        memory_gib=round(memory / 2**30 if memory else 1.0, 1),
        # the backends' tables, validated with their settings models (edgecc.targets.settings)
        onnxruntime={},
        openvino={} if arch == "x86_64" else None,
        tvm={"mtriple": f"{arch}-linux-gnu", "mcpu": _llvm_mcpu(isa, vendor_amd, arch), "num_cores": cores},
    )
