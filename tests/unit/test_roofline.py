from __future__ import annotations

import json

import pytest

from edgecc.cache import cache_dir
from edgecc.profiling import roofline
from edgecc.targets import detect_host
from edgecc.targets import host as machine


def test_fraction_is_achieved_over_peak():
    assert roofline.roofline_fraction(8_000_000_000, 40.0, 400.0) == pytest.approx(0.5)  # 200 GFLOP/s of 400
    assert roofline.roofline_fraction(None, 40.0, 400.0) is None
    assert roofline.roofline_fraction(8e9, 40.0, None) is None


def test_gemm_measures_something_real():
    gflops = machine.measure_gemm_gflops(seconds=0.2, n=256)
    assert 0.1 < gflops < 1e5


def test_peak_is_measured_once_then_cached(monkeypatch):
    calls = []
    monkeypatch.setattr(machine, "measure_gemm_gflops", lambda: calls.append(1) or 123.4)
    assert machine.host_peak_gflops(measure=False) is None
    assert machine.host_peak_gflops() == 123.4
    assert machine.host_peak_gflops() == 123.4 and len(calls) == 1
    detect_host.cache_clear()
    try:
        host = detect_host()
        assert host.peak_fp32_gflops == 123.4 and host.peak_source.startswith("measured")
    finally:
        detect_host.cache_clear()


def test_measuring_again_keeps_the_best(monkeypatch):
    values = iter([80.0, 60.0, 120.0])
    monkeypatch.setattr(machine, "measure_gemm_gflops", lambda: next(values))
    assert machine.host_peak_gflops() == 80.0
    assert machine.host_peak_gflops(again=True) == 80.0   # a busier moment measured 60: not kept
    assert machine.host_peak_gflops(again=True) == 120.0  # a quieter one: kept


def test_damaged_or_foreign_cache_is_measured_again(monkeypatch):
    path = cache_dir("host") / "gemm_peak.json"
    monkeypatch.setattr(machine, "measure_gemm_gflops", lambda: 50.0)
    path.write_text("{not json")
    assert machine.host_peak_gflops() == 50.0
    path.write_text(json.dumps({"key": "another machine", "gflops": 999.0}))
    assert machine.host_peak_gflops() == 50.0


def test_host_facts_agree_with_the_host_target():
    t = detect_host()
    assert t.cpu == machine.cpu_model() and t.arch == machine.host_arch() and t.isa == machine.isa_flags()
    assert t.cores == machine.available_cores() and machine.local_threads(1 << 16) == t.cores
    assert machine.local_threads(1) == 1 and machine.local_threads(0) == 1
    assert t.memory_gib == round(machine.memory_bytes() / 2**30, 1)
