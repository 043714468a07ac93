"""The OpenVINO backend: outputs against onnxruntime per precision, FP32 forced on BF16 CPUs, layer
profile, op support, precision rules, the compiled-model cache, and behaviour without openvino."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest
from onnx import TensorProto

pytest.importorskip("openvino", reason="openvino is not installed (pip install \"edgecc[openvino]\")")

from edgecc.backends import get_backend  # noqa: E402
from edgecc.backends.openvino import OpenVinoBackend  # noqa: E402
from edgecc.errors import BackendUnavailable, BadInputError, UnsupportedError  # noqa: E402
from edgecc.graph.io import PreparedModel, model_bytes, prepare_model, to_proto  # noqa: E402
from edgecc.pipeline import build_artifact, profile_artifact, read_reference  # noqa: E402
from edgecc.profiling.verify import TOLERANCES  # noqa: E402
from edgecc.targets import detect_host, load_registry  # noqa: E402

pytestmark = pytest.mark.openvino

REPO = Path(__file__).resolve().parents[2]
# Few runs: these tests check numbers, not speed (speed is measured in benchmarks/).
QUICK = {"warmup": 1, "runs": 3, "min_time_s": 0.0}


@pytest.fixture(scope="module")
def backend() -> OpenVinoBackend:
    return get_backend("openvino")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def tinycnn() -> PreparedModel:
    return prepare_model("zoo:tinycnn")


@pytest.fixture(scope="module")
def fp32_artifact(backend, tinycnn, tmp_path_factory):
    return build_artifact(tinycnn, detect_host(), backend, "fp32", None, tmp_path_factory.mktemp("ov") / "fp32")


def host_has_bf16(backend) -> bool:
    return "bf16" in backend.precisions(detect_host())


def custom_op_model(tmp_path, *, nested: bool) -> PreparedModel:
    """x[1,4] -> Relu -> com.acme::FooBar -> z; with ``nested`` FooBar sits in an If's then-branch."""
    x = oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    z = oh.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])
    inputs = [x]
    if nested:
        then = oh.make_graph([oh.make_node("FooBar", ["y"], ["t"], domain="com.acme")], "then", [],
                             [oh.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])])
        other = oh.make_graph([oh.make_node("Neg", ["y"], ["e"])], "else", [],
                              [oh.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
        nodes = [oh.make_node("Relu", ["x"], ["y"]), oh.make_node("If", ["c"], ["z"], then_branch=then, else_branch=other)]
        inputs.append(oh.make_tensor_value_info("c", TensorProto.BOOL, []))
    else:
        nodes = [oh.make_node("Relu", ["x"], ["y"]), oh.make_node("FooBar", ["y"], ["z"], domain="com.acme")]
    model = oh.make_model(oh.make_graph(nodes, "custom", inputs, [z]),
                          opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("com.acme", 1)])
    model.ir_version = 8
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    return prepare_model(path)


# --- numbers against the onnxruntime reference -----------------------------------------------------

def test_fp32_matches_onnxruntime_and_profiles_layers(backend, fp32_artifact):
    row = profile_artifact(fp32_artifact, backend, layer_runs=3, **QUICK)

    assert row.status == "ok" and row.verified is True
    assert row.max_abs_error < 1e-4
    assert row.cosine > 0.99999
    assert row.latency_ms.p50 > 0
    times = [l.time_ms for l in row.layers]
    assert times and all(t > 0 for t in times)
    assert times == sorted(times, reverse=True)
    assert "Convolution" in {l.op_type for l in row.layers}
    assert all(l.exec_type for l in row.layers)


def test_runner_returns_onnx_output_names_as_fresh_arrays(backend, fp32_artifact):
    feeds, expected = read_reference(fp32_artifact)
    with backend.open_runner(fp32_artifact) as runner:
        first = runner.run(feeds)
        second = runner.run({k: v * 0 for k, v in feeds.items()})

    assert set(first) == {"logits"}
    assert first["logits"].shape == (1, 10) and first["logits"].dtype == np.float32
    # still the first run's values: outputs are copies, not views of the request's tensors
    np.testing.assert_allclose(first["logits"], expected["logits"], rtol=0, atol=1e-4)
    assert not np.allclose(first["logits"], second["logits"])


def test_manifest_records_concrete_options(fp32_artifact):
    manifest = fp32_artifact.manifest

    assert manifest.options["device"] == "CPU"
    assert manifest.options["performance_hint"] == "LATENCY"
    assert manifest.options["inference_num_threads"] == detect_host().cores
    assert manifest.passes[-1] == "openvino-convert-model"
    assert "openvino" in manifest.versions


def test_fp32_is_forced_on_cpus_that_default_to_bf16(backend, fp32_artifact):
    with backend.open_runner(fp32_artifact) as runner:
        precisions = runner.runtime_precisions()
        hint = runner.compiled.get_property("INFERENCE_PRECISION_HINT")

    assert precisions.get("f32", 0) > 0
    assert "bf16" not in precisions and "f16" not in precisions
    assert str(hint) == "<Type: 'float32'>"


def test_bf16_runs_in_bf16_within_its_tolerance(backend, tmp_path):
    if not host_has_bf16(backend):
        pytest.skip("this CPU has no BF16 (OpenVINO's OPTIMIZATION_CAPABILITIES lacks BF16)")
    model = prepare_model("zoo:resnet18")
    artifact = build_artifact(model, detect_host(), backend, "bf16", None, tmp_path / "bf16")
    with backend.open_runner(artifact) as runner:
        precisions = runner.runtime_precisions()
    row = profile_artifact(artifact, backend, layer_runs=0, **QUICK)

    assert precisions.get("bf16", 0) > 10
    tol = TOLERANCES["bf16"]
    assert row.verified is True and row.status == "ok"
    assert row.cosine >= tol.min_cosine
    # an FP32 run of this model agrees to ~1e-6; a larger error shows the arithmetic really was bf16
    assert row.max_abs_error > 1e-4


def test_saved_weights_stay_fp32(fp32_artifact, tinycnn):
    blob = fp32_artifact.file("model.bin").read_bytes()
    fc = tinycnn.model.graph.initializers["fc.weight"].const_value.numpy()

    # BatchNorm is folded into the convolutions, so sizes differ slightly; FP16 weights would halve them.
    assert 0.9 < len(blob) / model_bytes(tinycnn.model) < 1.1
    assert fc.tobytes() in blob
    assert fc.astype(np.float16).tobytes() not in blob


# --- options -----------------------------------------------------------------------------------------

def test_explicit_options_reach_the_compiled_model(backend, tinycnn, tmp_path):
    options = {"performance_hint": "THROUGHPUT", "num_streams": 1, "inference_num_threads": 1}
    artifact = build_artifact(tinycnn, detect_host(), backend, "fp32", options, tmp_path / "a", reference=False)
    with backend.open_runner(artifact) as runner:
        compiled = runner.compiled
        got = {k: compiled.get_property(k) for k in ("INFERENCE_NUM_THREADS", "NUM_STREAMS", "PERFORMANCE_HINT")}

    assert artifact.manifest.options["inference_num_threads"] == 1
    assert got["INFERENCE_NUM_THREADS"] == 1
    assert int(got["NUM_STREAMS"]) == 1
    assert str(got["PERFORMANCE_HINT"]).endswith("THROUGHPUT")


@pytest.mark.parametrize("options", [{"performance_hint": "FAST"}, {"num_streams": 0}, {"threads": 2}])
def test_bad_options_are_rejected(backend, options):
    with pytest.raises(BadInputError, match="openvino option"):
        backend.parse_options(options)


# --- what it supports ----------------------------------------------------------------------------------

def test_zoo_model_has_no_unsupported_ops(backend, tinycnn):
    assert backend.unsupported_ops(tinycnn) == []


@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "inside-if"])
def test_unknown_op_is_found_and_refused(backend, tmp_path, nested):
    model = custom_op_model(tmp_path, nested=nested)

    assert backend.unsupported_ops(model) == ["com.acme::FooBar"]
    with pytest.raises(UnsupportedError, match="com.acme::FooBar"):
        build_artifact(model, detect_host(), backend, "fp32", None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("target, expected", [
    ("intel-core-avx2", ("fp32",)),
    ("intel-xeon-avx512", ("fp32",)),
    ("intel-xeon-sapphire-rapids", ("fp32", "bf16")),
    ("intel-npu", ("fp16",)),
])
def test_precisions_follow_the_target(backend, target, expected):
    assert backend.precisions(load_registry().get(target)) == expected


def test_host_precisions_are_what_openvino_reports(backend):
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    got = backend.precisions(detect_host())

    assert got[0] == "fp32"
    assert ("bf16" in got) == ("BF16" in capabilities)
    assert ("fp16" in got) == ("FP16" in capabilities)
    assert "int8" not in got


def test_fp16_on_a_cpu_without_it_names_what_it_can(backend):
    target = load_registry().get("intel-xeon-avx512")
    with pytest.raises(UnsupportedError, match=r"cannot run fp16 on target intel-xeon-avx512; it can: fp32, int8$"):
        backend.check_precision(target, "fp16")


# --- the compiled-model cache --------------------------------------------------------------------------

def test_second_runner_opens_from_the_cache(backend, fp32_artifact, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGECC_CACHE_DIR", str(cache))
    feeds, _ = read_reference(fp32_artifact)
    with backend.open_runner(fp32_artifact) as first:
        cold = first.loaded_from_cache
        out1 = first.run(feeds)
    cached = [p for p in (cache / "openvino").rglob("*") if p.is_file()]
    with backend.open_runner(fp32_artifact) as second:
        warm = second.loaded_from_cache
        out2 = second.run(feeds)

    assert cold is False and warm is True
    assert cached and sum(p.stat().st_size for p in cached) > 10_000
    np.testing.assert_array_equal(out1["logits"], out2["logits"])


def test_cache_off_writes_nothing(backend, tinycnn, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGECC_CACHE_DIR", str(cache))
    artifact = build_artifact(tinycnn, detect_host(), backend, "fp32", {"cache": False}, tmp_path / "a", reference=False)
    for _ in range(2):
        with backend.open_runner(artifact) as runner:
            assert runner.loaded_from_cache is False

    assert not any(p.is_file() for p in (cache / "openvino").rglob("*"))


def test_artifact_rebuilt_in_place_is_not_served_stale_from_the_cache(backend, tinycnn, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECC_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "a"
    with backend.open_runner(build_artifact(tinycnn, detect_host(), backend, "fp32", None, out)) as runner:
        assert runner.loaded_from_cache is False
    with backend.open_runner(build_artifact(tinycnn, detect_host(), backend, "fp32", None, out)) as runner:
        assert runner.loaded_from_cache is True  # rebuilt, same model: the cache serves it

    # the same file names with different weights: fc.bias + 1 shifts every logit by 1
    changed = ir.serde.deserialize_model(to_proto(tinycnn.model))
    bias = changed.graph.initializers["fc.bias"]
    bias.const_value = ir.tensor(bias.const_value.numpy() + 1.0, name="fc.bias")
    artifact = build_artifact(PreparedModel(changed, "changed", "changed", "0" * 64), detect_host(), backend, "fp32", None, out)
    with backend.open_runner(artifact) as runner:
        assert runner.loaded_from_cache is False
    row = profile_artifact(artifact, backend, layer_runs=0, **QUICK)

    assert row.verified is True and row.max_abs_error < 1e-4


# --- without openvino ----------------------------------------------------------------------------------

def test_without_openvino_the_backend_says_how_to_install_it(monkeypatch, tinycnn, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` raise ImportError
    backend = OpenVinoBackend()
    host = detect_host()

    availability = backend.availability()
    assert availability.available is False
    assert "openvino" in availability.reason
    with pytest.raises(BackendUnavailable, match=r'pip install "edgecc\[openvino\]"'):
        backend.require()
    with pytest.raises(BackendUnavailable, match=r'pip install "edgecc\[openvino\]"'):
        build_artifact(tinycnn, host, backend, "fp32", None, tmp_path / "a")
    # precisions fall back to the ISA rule instead of crashing
    isa = set(host.isa)
    assert backend.precisions(host) == ("fp32",) + (("bf16",) if isa & {"avx512_bf16", "amx_bf16"} else ()) + (
        ("fp16",) if isa & {"avx512_fp16", "amx_fp16"} else ())


def test_importing_the_backend_does_not_import_openvino():
    code = (
        "import sys, edgecc.backends.openvino, edgecc.backends.openvino.compile, edgecc.backends.openvino.run;"
        "from edgecc.backends import get_backend; from edgecc.targets import load_registry;"
        "b = get_backend('openvino'); b.precisions(load_registry().get('intel-xeon-avx512'));"
        "print('openvino' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
