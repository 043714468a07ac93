"""TensorRT on a real NVIDIA GPU: build, verify against onnxruntime, per-layer profile, timing cache
reuse, CUDA-event timing, refusal of a mismatched engine. Skipped, with the reason printed, where
there is no full tensorrt package or no CUDA device (which is every machine edgecc's CI runs on:
none of these tests has been run yet)."""

from __future__ import annotations

import json

import pytest

from edgecc.backends import get_backend

_AVAILABILITY = get_backend("tensorrt").availability()
pytestmark = [
    pytest.mark.tensorrt,
    pytest.mark.skipif(not _AVAILABILITY.available, reason=f"TensorRT unavailable: {_AVAILABILITY.reason}"),
]

QUICK = {"warmup": 2, "runs": 5, "min_time_s": 0.0}


@pytest.fixture(scope="module")
def gpu_target():
    """A target for the GPU in this machine (engines are built for the GPU they run on)."""
    from edgecc.backends.tensorrt.device import current_gpu
    from edgecc.targets import TARGET_ADAPTER

    gpu = current_gpu()
    return TARGET_ADAPTER.validate_python({
        "kind": "gpu", "name": "this-gpu", "description": gpu.name, "device_class": "desktop",
        "preferred_backend": "tensorrt", "arch": "x86_64", "cpu": "host", "cores": 2, "gpu": gpu.name,
        "peak_fp32_gflops": 1000.0, "memory_gib": 8, "onnxruntime": {},
        "tensorrt": {"compute_capability": gpu.compute_capability, "workspace_mib": 256},
    })


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_verify_profile(tmp_path, gpu_target, precision):
    from edgecc.graph.io import prepare_model
    from edgecc.pipeline import build_artifact, profile_artifact

    be = get_backend("tensorrt")
    art = build_artifact(prepare_model("zoo:tinycnn"), gpu_target, be, precision, None, tmp_path / "a")
    info = json.loads((art.path / "engine.json").read_text())
    assert info["compute_capability"] == gpu_target.tensorrt.compute_capability
    row = profile_artifact(art, be, layer_runs=3, **QUICK)
    assert row.status == "ok" and row.verified is True, row.error
    assert row.layers and all(l.time_ms >= 0 for l in row.layers)
    assert row.device_latency_ms is not None and 0 < row.device_latency_ms.p50 <= row.latency_ms.p50


def test_timing_cache_is_reused(tmp_path, gpu_target):
    from edgecc.graph.io import prepare_model
    from edgecc.pipeline import build_artifact

    be = get_backend("tensorrt")
    model = prepare_model("zoo:tinycnn")
    first = json.loads((build_artifact(model, gpu_target, be, "fp32", None, tmp_path / "a").path / "engine.json").read_text())
    second = json.loads((build_artifact(model, gpu_target, be, "fp32", None, tmp_path / "b").path / "engine.json").read_text())
    assert first["timing_cache"] == second["timing_cache"]
    assert first["timing_cache_bytes_before"] == 0 and first["timing_cache_bytes_after"] > 0
    assert second["timing_cache_bytes_before"] == first["timing_cache_bytes_after"]


def test_cuda_event_timing_and_mismatch_refused(tmp_path, gpu_target):
    from edgecc.artifact import load_artifact
    from edgecc.backends.tensorrt.device import current_gpu
    from edgecc.backends.tensorrt.engine import check_engine_matches, read_engine_info
    from edgecc.errors import ArtifactError
    from edgecc.graph.io import prepare_model
    from edgecc.pipeline import build_artifact, read_reference

    be = get_backend("tensorrt")
    art = build_artifact(prepare_model("zoo:tinycnn"), gpu_target, be, "fp32", None, tmp_path / "a")
    feeds, _ = read_reference(load_artifact(art.path))
    with be.open_runner(art) as runner:
        times = runner.device_times_ms(feeds, warmup=2, runs=5)
    assert len(times) == 5 and all(t > 0 for t in times)
    info = read_engine_info(art.path).model_copy(update={"compute_capability": "1.0"})
    with pytest.raises(ArtifactError, match="cannot run on"):
        check_engine_matches(info, current_gpu(), _AVAILABILITY.versions["tensorrt"], None)
