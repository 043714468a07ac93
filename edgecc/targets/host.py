"""Detect the machine edgecc runs on and describe it as the ``host`` target."""

from __future__ import annotations

import functools
import os
import platform

from .models import CpuTarget, OnnxRuntimeSettings, OpenVinoSettings, TvmTargetSettings

GEMM_DESC = "1024x1024x1024"
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


def _arch() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(m, m)


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


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.cache
def detect_host() -> CpuTarget:
    """The ``host`` target: this machine's CPU, cores available to this process, ISA and memory."""
    name, flags, mhz = _cpuinfo()
    arch = _arch()
    if arch not in ("x86_64", "aarch64"):
        arch = "x86_64" if "86" in arch else "aarch64"
    cores = available_cores()
    isa = {f for f in flags if f in RELEVANT_FLAGS}
    if arch == "aarch64":
        isa |= {"neon"} if "asimd" in flags else set()
        isa |= {"dotprod"} if "asimddp" in flags else set()
    ghz = (mhz or 2000.0) / 1000.0
    from ..profiling.roofline import host_peak_gflops

    measured = host_peak_gflops(measure=False)
    estimate = round(cores * ghz * _flops_per_cycle(isa, arch), 1)
    peak_source = (
        f"measured: onnxruntime FP32 MatMul {GEMM_DESC} on {cores} cores, best run"
        if measured
        else f"estimate: {cores} cores x {ghz:.2f} GHz x {_flops_per_cycle(isa, arch)} FLOP/cycle"
    )
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = 1.0
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
        memory_gib=round(memory, 1),
        onnxruntime=OnnxRuntimeSettings(),
        openvino=OpenVinoSettings() if arch == "x86_64" else None,
        tvm=TvmTargetSettings(
            mtriple=f"{arch}-linux-gnu", mcpu=_llvm_mcpu(isa, vendor_amd, arch), num_cores=cores
        ),
    )
