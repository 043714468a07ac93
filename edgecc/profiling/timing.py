"""Latency measurement: warm-up, then runs until both a run count and a minimum time are reached."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from ..errors import BadInputError


@dataclass(frozen=True)
class ProfileSettings:
    """How long to measure: ``warmup`` untimed runs, then at least ``runs`` runs and ``min_time_s`` seconds;
    ``layer_runs`` extra runs with per-layer profiling (0 turns it off)."""

    warmup: int = 10
    runs: int = 50
    min_time_s: float = 1.0
    layer_runs: int = 10

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.runs < 1 or self.min_time_s < 0 or self.layer_runs < 0:
            raise BadInputError("profile settings: warmup >= 0, runs >= 1, min time >= 0 and layer runs >= 0")


class LatencyStats(BaseModel):
    """Latency of one inference in milliseconds."""

    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float

    @classmethod
    def from_samples(cls, samples_ms: np.ndarray) -> LatencyStats:
        p50, p90, p99 = np.percentile(samples_ms, [50, 90, 99])
        return cls(
            p50=float(p50), p90=float(p90), p99=float(p99), mean=float(samples_ms.mean()),
            std=float(samples_ms.std()), min=float(samples_ms.min()),
        )


def measure(run: Callable[[], object], *, warmup: int = 10, runs: int = 50, min_time_s: float = 1.0) -> np.ndarray:
    """Latencies (ms) of ``run()``: ``warmup`` untimed calls, then timed calls until at least ``runs``
    calls and ``min_time_s`` seconds are done."""
    for _ in range(warmup):
        run()
    samples = []
    start = time.perf_counter()
    while len(samples) < runs or time.perf_counter() - start < min_time_s:
        t0 = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return np.asarray(samples)
