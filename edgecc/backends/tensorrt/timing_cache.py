"""TensorRT timing caches kept per (GPU, TensorRT version) under the user cache directory.

A timing cache records how fast each kernel tactic ran for each layer shape on one GPU model; a
later build that meets the same layer skips timing it again. Caches from another GPU or TensorRT
version are useless (TensorRT rejects them), hence one file per pair.
"""

from __future__ import annotations

from ...atomic import write_atomic

import re
from pathlib import Path

from ...cache import cache_dir
from .device import GpuInfo

SUBDIR = "tensorrt"


def timing_cache_key(gpu: GpuInfo, tensorrt_version: str) -> str:
    """A file-name-safe key, e.g. 'nvidia-geforce-rtx-3090-sm86-trt10.3.0'."""
    name = re.sub(r"[^a-z0-9]+", "-", gpu.name.lower()).strip("-") or "gpu"
    version = re.sub(r"[^0-9A-Za-z.]+", "-", tensorrt_version)
    return f"{name}-{gpu.sm.replace('_', '')}-trt{version}"


def timing_cache_path(gpu: GpuInfo, tensorrt_version: str) -> Path:
    return cache_dir(SUBDIR) / f"timing-{timing_cache_key(gpu, tensorrt_version)}.cache"


def load_timing_cache(path: Path) -> bytes:
    """The serialised cache at ``path``, or b"" (an empty cache) when there is none yet."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def save_timing_cache(path: Path, data: bytes) -> None:
    """Replace the cache atomically: a concurrent build reads the old cache or the new, never half of one."""
    write_atomic(path, data)
