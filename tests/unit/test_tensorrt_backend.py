"""The TensorRT backend's parts that run without TensorRT or a GPU: availability (no tensorrt / lean
only / no CUDA device), the CUDA probe, the engine manifest check, timing-cache keys, the static
operator table, precisions, and the CLI's messages and exit codes on a machine without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest
from onnx import TensorProto

from edgecc.backends import get_backend
from edgecc.backends.tensorrt import tensorrt_availability
from edgecc.backends.tensorrt.device import CudaProbe, GpuInfo, parse_probe, run_probe
from edgecc.backends.tensorrt.engine import EngineInfo, check_engine_matches, read_engine_info, write_engine_info
from edgecc.backends.tensorrt.ops import (
    ESTIMATE_LABEL, OPSET_RANGE, SUPPORTED_OPS, UNSUPPORTED_OPS, estimate_unsupported_ops, opset_outside_range,
)
from edgecc.backends.tensorrt.timing_cache import (
    load_timing_cache, save_timing_cache, timing_cache_key, timing_cache_path,
)
from edgecc.errors import ArtifactError
from edgecc.graph.io import prepare_model
from edgecc.targets import load_registry

from conftest import make_model

REPO = Path(__file__).resolve().parents[2]
ORIN = GpuInfo(0, "Orin", "8.7", True, 7_600_000_000)
RTX = GpuInfo(0, "NVIDIA GeForce RTX 3090", "8.6", False, 25_000_000_000)


def no_tensorrt_here() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is None


# --- availability ---

def spec_of(*present):
    return lambda name: object() if name in present else None


def test_no_tensorrt():
    a = tensorrt_availability(find_spec=spec_of(), probe=lambda: pytest.fail("probed without tensorrt"))
    assert not a.available and a.reason == "tensorrt is not installed"


def test_lean_runtime_only():
    a = tensorrt_availability(find_spec=spec_of("tensorrt_lean"), probe=lambda: pytest.fail("probed"))
    assert not a.available
    assert a.reason.startswith("only TensorRT's runtime-only package (tensorrt_lean) is installed: it cannot build engines")


def test_no_cuda_device_never_imports_tensorrt():
    probe = CudaProbe((), None, "cuInit failed: CUDA_ERROR_NO_DEVICE (100)")
    a = tensorrt_availability(find_spec=spec_of("tensorrt"), probe=lambda: probe,
                              import_tensorrt=lambda: pytest.fail("tensorrt imported without a CUDA device"))
    assert not a.available
    assert a.reason == "no CUDA device here (cuInit failed: CUDA_ERROR_NO_DEVICE (100)); TensorRT needs an NVIDIA GPU"


def test_runtime_without_builder_and_broken_import():
    probe = CudaProbe((ORIN,), "12.6", None)
    runtime_only = type("M", (), {"__version__": "10.3.0", "Runtime": object})
    a = tensorrt_availability(spec_of("tensorrt"), lambda: probe, lambda: runtime_only)
    assert not a.available and "tensorrt 10.3.0 has no Builder or OnnxParser" in a.reason

    def broken():
        raise OSError("libnvinfer.so.10: cannot open shared object file")

    a = tensorrt_availability(spec_of("tensorrt"), lambda: probe, broken)
    assert a.reason == "tensorrt cannot be imported (OSError: libnvinfer.so.10: cannot open shared object file)"


def test_available_reports_gpu_and_versions():
    full = type("M", (), {"__version__": "10.3.0", "Builder": object, "OnnxParser": object})
    a = tensorrt_availability(spec_of("tensorrt"), lambda: CudaProbe((ORIN,), "12.6", None), lambda: full)
    assert a.available and a.reason == "GPU 0: Orin (sm_87)"
    assert a.versions == {"tensorrt": "10.3.0", "cuda-driver": "12.6"}


def test_the_real_probe_here_finds_no_device():
    # This machine has no NVIDIA driver: the real probe (a child process) says so, and nothing crashes.
    if Path("/dev/nvidia0").exists():
        pytest.skip("this machine has an NVIDIA device")
    from edgecc.backends.tensorrt.device import probe_cuda

    probe = probe_cuda()
    assert probe.devices == () and probe.error
    assert "libcuda" in probe.error or "cuInit" in probe.error


def test_a_crashing_probe_is_a_reason(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    assert run_probe(script).error == "the CUDA driver probe failed (signal 11)"
    script.write_text("print('not json')\n")
    assert run_probe(script).error == "the CUDA driver probe gave no readable answer"


def test_parse_probe():
    p = parse_probe({"driver": True, "error": None, "driver_version": "12.6", "devices": [
        {"index": 0, "name": "Orin", "compute_capability": "8.7", "integrated": True, "total_memory_bytes": 7}]})
    assert p.devices[0].sm == "sm_87" and p.devices[0].integrated and p.describe() == "GPU 0: Orin (sm_87)"
    assert parse_probe({"driver": False, "error": "x", "devices": []}).describe() == "x"


def _site_with(tmp_path, *packages: str, body: str = "") -> Path:
    site = tmp_path / "site"
    for p in packages:
        (site / p).mkdir(parents=True)
        (site / p / "__init__.py").write_text(body)
    return site


def _edgecc(*args, site: Path | None = None, cwd=None):
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-m", "edgecc", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


@pytest.mark.skipif(not no_tensorrt_here(), reason="tensorrt is installed here")
def test_doctor_lines(tmp_path):
    # no tensorrt: the line says so, with how Jetson and workstation users get it
    r = _edgecc("doctor", "--json")
    row = next(b for b in json.loads(r.stdout)["backends"] if b["backend"] == "tensorrt")
    assert row["available"] is False and row["reason"] == "tensorrt is not installed"
    assert "JetPack" in row["install"] and "https://pypi.nvidia.com" in row["install"]
    # a lean-only install (a package directory named as the lean wheel's module)
    r = _edgecc("doctor", "--json", site=_site_with(tmp_path / "lean", "tensorrt_lean"))
    row = next(b for b in json.loads(r.stdout)["backends"] if b["backend"] == "tensorrt")
    assert "runtime-only package (tensorrt_lean)" in row["reason"]
    # a tensorrt that crashes the process when imported, like the runtime without a GPU: doctor must not
    # import it, because the (real) driver probe finds no CUDA device here first
    if Path("/dev/nvidia0").exists():
        return
    site = _site_with(tmp_path / "crash", "tensorrt", body="import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    r = _edgecc("doctor", site=site)
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if "tensorrt" in l and "missing" in l)
    assert "no CUDA device here" in line


@pytest.mark.skipif(not no_tensorrt_here(), reason="tensorrt is installed here")
def test_compile_without_tensorrt_exits_3(tmp_path):
    r = _edgecc("compile", "zoo:tinycnn", "-t", "jetson-orin-nano", "-b", "tensorrt", "-o", str(tmp_path / "a"))
    assert r.returncode == 3
    assert "backend tensorrt is unavailable: tensorrt is not installed; on a Jetson, TensorRT comes with JetPack" in r.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.skipif(not no_tensorrt_here() or Path("/dev/nvidia0").exists(), reason="needs a machine without GPU")
def test_compile_without_gpu_exits_3_and_points_to_ssh(tmp_path):
    site = _site_with(tmp_path, "tensorrt", body="import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    r = _edgecc("compile", "zoo:tinycnn", "-t", "jetson-orin-nano", "-b", "tensorrt", "-o", str(tmp_path / "a"), site=site)
    assert r.returncode == 3, r.stderr
    assert "no CUDA device here" in r.stderr and "--device ssh://user@host" in r.stderr


def test_precisions_follow_compute_capability():
    reg = load_registry(None)
    be = get_backend("tensorrt")
    assert be.precisions(reg.get("jetson-nano")) == ("fp32", "fp16")  # sm_53: no DP4A
    assert be.precisions(reg.get("jetson-orin-nano")) == ("fp32", "fp16", "int8")
    assert be.precisions(reg.get("intel-xeon-avx512")) == ()
    assert "does not list backend tensorrt" in be.target_support(reg.get("raspberry-pi-4"))


def test_compile_refuses_a_target_of_another_gpu():
    from edgecc.backends.tensorrt.compile import check_target_matches_gpu
    from edgecc.errors import UnsupportedError

    reg = load_registry(None)
    check_target_matches_gpu(reg.get("jetson-orin-nano"), ORIN)
    with pytest.raises(UnsupportedError, match=r"target jetson-orin-nano has compute capability 8.7, the GPU here is "
                                               r"NVIDIA GeForce RTX 3090 \(8.6\).*--device ssh://user@host"):
        check_target_matches_gpu(reg.get("jetson-orin-nano"), RTX)


# --- engine manifest ---

def info_for(gpu: GpuInfo, trt="10.3.0", driver="12.6") -> EngineInfo:
    return EngineInfo(gpu_name=gpu.name, compute_capability=gpu.compute_capability, integrated=gpu.integrated,
                      tensorrt_version=trt, cuda_driver_version=driver, build_s=1.0)


def test_engine_matches_its_own_gpu():
    check_engine_matches(info_for(ORIN), ORIN, "10.3.0", "12.6")
    check_engine_matches(info_for(ORIN), ORIN, "10.3.0", "12.8")  # a newer driver of the same major is fine


@pytest.mark.parametrize("gpu, trt, driver, message", [
    (RTX, "10.3.0", "12.6", r"built for Orin \(compute capability 8.7, TensorRT 10.3.0\) and cannot run on "
                            r"NVIDIA GeForce RTX 3090 \(compute capability 8.6, TensorRT 10.3.0\)"),
    (GpuInfo(0, "Orin (nvgpu)", "8.7", True, 1), "10.3.0", "12.6", "cannot run on Orin \\(nvgpu\\)"),
    (ORIN, "10.7.0", "12.6", "built with TensorRT 10.3.0; this machine has TensorRT 10.7.0"),
    (ORIN, "10.3.0", "12.2", "built under CUDA driver 12.6; this machine's driver is 12.2"),
    (ORIN, "10.3.0", "13.0", "built under CUDA driver 12.6; this machine's driver is 13.0"),
])
def test_mismatched_engine_is_refused(gpu, trt, driver, message):
    with pytest.raises(ArtifactError, match=message) as e:
        check_engine_matches(info_for(ORIN), gpu, trt, driver)
    assert "recompile this model on this device" in str(e.value)


def test_engine_info_round_trip_and_errors(tmp_path):
    write_engine_info(tmp_path, info_for(ORIN))
    assert read_engine_info(tmp_path) == info_for(ORIN)
    (tmp_path / "engine.json").write_text("{}")
    with pytest.raises(ArtifactError, match="unreadable engine manifest"):
        read_engine_info(tmp_path)
    with pytest.raises(ArtifactError, match="not a TensorRT artifact"):
        read_engine_info(tmp_path / "nothing")


# --- timing cache ---

def test_timing_cache_keyed_per_gpu_and_version(tmp_path):
    assert timing_cache_key(RTX, "10.3.0") == "nvidia-geforce-rtx-3090-sm86-trt10.3.0"
    assert timing_cache_key(ORIN, "10.3.0.30") == "orin-sm87-trt10.3.0.30"
    paths = {timing_cache_path(g, v) for g in (ORIN, RTX) for v in ("10.3.0", "10.7.0")}
    assert len(paths) == 4
    root = Path(os.environ["EDGECC_CACHE_DIR"]) / "tensorrt"
    assert all(p.parent == root for p in paths)
    p = timing_cache_path(ORIN, "10.3.0")
    assert load_timing_cache(p) == b""
    save_timing_cache(p, b"\x01\x02cache")
    assert load_timing_cache(p) == b"\x01\x02cache"
    save_timing_cache(p, b"bigger cache")
    assert load_timing_cache(p) == b"bigger cache" and list(root.iterdir()) == [p]


# --- static operator table ---

def test_table_is_the_documented_matrix():
    assert len(SUPPORTED_OPS) == 150 and len(UNSUPPORTED_OPS) == 46  # the Y and N rows of the matrix
    assert not SUPPORTED_OPS & UNSUPPORTED_OPS
    assert {"Conv", "LayerNormalization", "QuantizeLinear", "NonZero"} <= SUPPORTED_OPS
    assert {"ConvInteger", "Unique", "QLinearConv"} <= UNSUPPORTED_OPS
    assert OPSET_RANGE == (9, 20) and "estimate" in ESTIMATE_LABEL and "96e781103cfc" in ESTIMATE_LABEL


def test_estimate_on_zoo_models():
    for name in ("resnet18", "mobilenetv2", "bert-tiny", "tinycnn"):
        assert estimate_unsupported_ops(prepare_model(f"zoo:{name}").model) == [], name


def test_estimate_finds_ops_in_subgraphs_functions_and_custom_domains():
    x = oh.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = oh.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    then_g = oh.make_graph([oh.make_node("Unique", ["x"], ["u"])], "then", [],
                           [oh.make_tensor_value_info("u", TensorProto.FLOAT, None)])
    else_g = oh.make_graph([oh.make_node("Relu", ["x"], ["r"])], "else", [],
                           [oh.make_tensor_value_info("r", TensorProto.FLOAT, None)])
    fn = oh.make_function("local", "Twice", ["a"], ["b"], [oh.make_node("Det", ["a"], ["b"])], [oh.make_opsetid("", 17)])
    fn_ok = oh.make_function("local", "Fine", ["a"], ["b"], [oh.make_node("Abs", ["a"], ["b"])], [oh.make_opsetid("", 17)])
    nodes = [
        oh.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        oh.make_node("Cast", ["s"], ["c"], to=TensorProto.BOOL),
        oh.make_node("If", ["c"], ["i"], then_branch=then_g, else_branch=else_g),
        oh.make_node("Twice", ["i"], ["t"], domain="local"),
        oh.make_node("Fine", ["t"], ["f"], domain="local"),
        oh.make_node("Gelu", ["f"], ["y"], domain="com.microsoft"),
    ]
    proto = make_model(nodes, [x], [y], domains=("local", "com.microsoft"))
    proto.functions.extend([fn, fn_ok])
    model = ir.from_proto(proto)
    assert estimate_unsupported_ops(model) == ["Det", "Unique", "com.microsoft::Gelu"]


def test_opset_range_note():
    from edgecc.graph.io import PreparedModel

    new = ir.from_proto(make_model([], [], [], opset=21))
    assert opset_outside_range(new) == "the model uses ONNX opset 21; TensorRT 10.0's parser takes opsets 9-20"
    assert opset_outside_range(ir.from_proto(make_model([], [], [], opset=17))) is None
    ops, label = get_backend("tensorrt").estimated_unsupported_ops(PreparedModel(new, "m", "m", "0"))
    assert ops == [] and label.endswith("; note: the model uses ONNX opset 21; TensorRT 10.0's parser takes opsets 9-20")


def test_layer_types_from_engine_inspector_json():
    from edgecc.backends.tensorrt.run import layer_types

    info = json.dumps({"Layers": [{"Name": "conv1 + relu1", "LayerType": "CaskConvolution"},
                                  {"Name": "pool", "LayerType": "CaskPooling"}, {"LayerType": "NoName"}],
                       "Bindings": ["x", "y"]})
    assert layer_types(info) == {"conv1 + relu1": "CaskConvolution", "pool": "CaskPooling"}
    assert layer_types("not json") == {} and layer_types('["a"]') == {}


@pytest.mark.skipif(not no_tensorrt_here(), reason="tensorrt is installed here: the parser answers instead")
def test_unsupported_ops_without_tensorrt_is_the_estimate_and_inspect_labels_it(tmp_path):
    x = oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    z = oh.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])
    proto = make_model([oh.make_node("Relu", ["x"], ["z"]), oh.make_node("BitShift", ["a", "b"], ["y"], direction="LEFT")],
                       [x, oh.make_tensor_value_info("a", TensorProto.UINT8, [1, 4]),
                        oh.make_tensor_value_info("b", TensorProto.UINT8, [1, 4])],
                       [z, oh.make_tensor_value_info("y", TensorProto.UINT8, [1, 4])])
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    assert get_backend("tensorrt").unsupported_ops(prepare_model(str(path))) == ["BitShift"]
    r = _edgecc("inspect", str(path), "--backend", "tensorrt", "--json", "-")
    row = json.loads(r.stdout)["backends"]
    assert [b["backend"] for b in row] == ["tensorrt"]
    assert row[0]["unsupported_ops"] == ["BitShift"] and row[0]["estimate"] == ESTIMATE_LABEL
    r = _edgecc("inspect", str(path), "--backend", "tensorrt")
    assert "ESTIMATE: cannot run BitShift (estimate from a static table of TensorRT 10.0" in " ".join(r.stdout.split())
    r = _edgecc("inspect", str(path), "--backend", "tensorrtt")
    assert r.returncode == 2 and "unknown backend 'tensorrtt' (did you mean tensorrt?)" in r.stderr


def test_profile_rows_carry_a_device_timer_when_the_runner_has_one(tmp_path, monkeypatch):
    """The pipeline hook TensorRT's CUDA-event timing goes through: absent for onnxruntime, reported
    when a runner has device_times_ms (here a stand-in on the onnxruntime runner, 2.5 ms per run)."""
    from edgecc.backends.onnxruntime.run import OnnxRuntimeRunner
    from edgecc.pipeline import build_artifact, profile_artifact

    be = get_backend("onnxruntime")
    art = build_artifact(prepare_model("zoo:tinycnn"), load_registry(None).get("host"), be, "fp32", None, tmp_path / "a")
    row = profile_artifact(art, be, warmup=1, runs=3, min_time_s=0, layer_runs=0)
    assert row.device_latency_ms is None and row.latency_ms.p50 > 0
    asked = []
    monkeypatch.setattr(OnnxRuntimeRunner, "device_times_ms",
                        lambda self, feeds, warmup, runs: asked.append((warmup, runs)) or [2.5] * runs, raising=False)
    row = profile_artifact(art, be, warmup=1, runs=3, min_time_s=0, layer_runs=0)
    assert row.device_latency_ms.p50 == 2.5 and asked == [(1, row.runs)]
