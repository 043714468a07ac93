"""Which CUDA device is here, found without touching TensorRT and without risk to this process.

The driver is asked in a child process (``_probe.py``, plain ctypes on libcuda): a missing or broken
driver, or one that crashes, becomes a reason string, never a crash of edgecc.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as the driver reports it."""

    index: int
    name: str
    compute_capability: str  # "8.7"
    integrated: bool  # True on Jetson (memory shared with the CPU)
    total_memory_bytes: int

    @property
    def sm(self) -> str:
        return "sm_" + self.compute_capability.replace(".", "")


@dataclass(frozen=True)
class CudaProbe:
    """What the driver said: its version and devices, or why there are none."""

    devices: tuple[GpuInfo, ...]
    driver_version: str | None
    error: str | None

    def describe(self) -> str:
        if self.devices:
            return "; ".join(f"GPU {d.index}: {d.name} ({d.sm})" for d in self.devices)
        return self.error or "the driver reports no CUDA device"


def parse_probe(data: dict) -> CudaProbe:
    devices = tuple(
        GpuInfo(int(d["index"]), str(d["name"]), str(d["compute_capability"]), bool(d["integrated"]),
                int(d["total_memory_bytes"]))
        for d in data.get("devices", [])
    )
    return CudaProbe(devices, data.get("driver_version"), data.get("error"))


PROBE_SCRIPT = Path(__file__).with_name("_probe.py")


@functools.cache
def probe_cuda() -> CudaProbe:
    """The CUDA devices here (cached for the life of the process)."""
    return run_probe(PROBE_SCRIPT)


def run_probe(script: Path) -> CudaProbe:
    """Run the probe ``script`` in a child process; whatever happens to it becomes a CudaProbe."""
    try:
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return CudaProbe((), None, f"the CUDA driver did not answer within {PROBE_TIMEOUT_S:g} s")
    except OSError as e:
        return CudaProbe((), None, f"cannot run the CUDA probe: {e}")
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        return CudaProbe((), None, f"the CUDA driver probe failed ({how})")
    try:
        return parse_probe(json.loads(done.stdout))
    except (ValueError, KeyError, TypeError):
        return CudaProbe((), None, "the CUDA driver probe gave no readable answer")


def current_gpu() -> GpuInfo | None:
    """The device TensorRT uses here (CUDA device 0 as CUDA_VISIBLE_DEVICES orders them), or None."""
    found = probe_cuda().devices
    return found[0] if found else None
