"""Roofline figures: achieved GFLOP/s against a peak. Only arithmetic: the peak comes with the target
(for ``host``, measured or estimated by edgecc.targets.host)."""

from __future__ import annotations


def roofline_fraction(flops: int | None, latency_ms: float | None, peak_gflops: float | None) -> float | None:
    """Achieved / peak: FLOPs per second at ``latency_ms`` over ``peak_gflops`` (None when unknown)."""
    if not flops or not latency_ms or not peak_gflops:
        return None
    return (flops / (latency_ms * 1e6)) / peak_gflops
