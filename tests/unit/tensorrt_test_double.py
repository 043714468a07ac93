"""TEST DOUBLE of the few tensorrt names ``apply_build_plan`` touches: it records each call so a test
can check which builder-config calls edgecc's options map to. It builds nothing and is never used to
produce a result: it exists only because TensorRT cannot be installed on machines without NVIDIA's
package index. Names and signatures follow TensorRT 10's Python API (tensorrt.IBuilderConfig)."""

from __future__ import annotations

import enum
from types import SimpleNamespace

TENSORRT_10_FLAGS = ("FP16", "BF16", "INT8", "TF32", "SPARSE_WEIGHTS", "GPU_FALLBACK", "REFIT", "STRICT_TYPES")


class RecordingConfigDouble:
    """Stands in for tensorrt.IBuilderConfig; every call and attribute set lands in ``calls``."""

    def __init__(self, calls: list):
        object.__setattr__(self, "calls", calls)

    def __setattr__(self, name, value):
        self.calls.append(("set", name, value))

    def set_memory_pool_limit(self, pool, size):
        self.calls.append(("set_memory_pool_limit", pool.name, size))

    def set_flag(self, flag):
        self.calls.append(("set_flag", flag.name))

    def clear_flag(self, flag):
        self.calls.append(("clear_flag", flag.name))

    def add_optimization_profile(self, profile):
        self.calls.append(("add_optimization_profile", tuple(profile.shapes)))

    def create_timing_cache(self, data):
        self.calls.append(("create_timing_cache", bytes(data)))
        return SimpleNamespace(data=bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch):
        self.calls.append(("set_timing_cache", cache.data, ignore_mismatch))


class RecordingProfileDouble:
    def __init__(self):
        self.shapes = []

    def set_shape(self, name, min, opt, max):  # noqa: A002 - TensorRT's parameter names
        self.shapes.append((name, tuple(min), tuple(opt), tuple(max)))


class RecordingBuilderDouble:
    def __init__(self, num_dla_cores: int = 0):
        self.num_DLA_cores = num_dla_cores

    def create_optimization_profile(self):
        return RecordingProfileDouble()


def tensorrt_module_double(flags=TENSORRT_10_FLAGS, version="10.3.0"):
    """A namespace with tensorrt's enum names; ``flags`` picks which BuilderFlag members exist."""
    return SimpleNamespace(
        __version__=version,
        BuilderFlag=enum.Enum("BuilderFlag", list(flags)),
        MemoryPoolType=enum.Enum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM"]),
        ProfilingVerbosity=enum.Enum("ProfilingVerbosity", ["LAYER_NAMES_ONLY", "NONE", "DETAILED"]),
        DeviceType=enum.Enum("DeviceType", ["GPU", "DLA"]),
    )
