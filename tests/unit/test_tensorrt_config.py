"""TensorRT build settings decided without TensorRT: options -> BuildPlan -> builder-config calls.

The calls are checked against a recording test double of the tensorrt module (tensorrt_test_double.py);
nothing here builds an engine. What needs a GPU is in tests/backends/test_tensorrt_gpu.py.
"""

from __future__ import annotations

import onnx_ir as ir
import pytest

from edgecc.backends import get_backend
from edgecc.backends.tensorrt.config import (
    SPARSITY_KEY, ModelFacts, ShapeRange, TensorRtOptions, apply_build_plan, model_facts, plan_build,
)
from edgecc.errors import BadInputError, UnsupportedError
from edgecc.graph.io import TensorSpec, prepare_model
from edgecc.targets import load_registry

from tensorrt_test_double import RecordingBuilderDouble, RecordingConfigDouble, tensorrt_module_double

IMAGE = (TensorSpec("x", "float32", (1, 3, 32, 32)),)
DENSE = ModelFacts(IMAGE, has_qdq=False, sparsity=None)
QDQ = ModelFacts(IMAGE, has_qdq=True, sparsity=None)


@pytest.fixture(scope="module")
def targets():
    return load_registry(None)


def plan(targets, target="jetson-orin-nano", precision="fp32", facts=DENSE, **options):
    return plan_build(TensorRtOptions(**options), targets.get(target), precision, facts)


def test_fp32_turns_tf32_off_unless_asked(targets):
    p = plan(targets)
    assert p.set_flags == () and p.clear_flags == ("TF32",)
    assert plan(targets, tf32=True).clear_flags == ()


def test_fp16_sets_the_fp16_flag(targets):
    assert plan(targets, precision="fp16").set_flags == ("FP16",)


def test_int8_needs_a_qdq_model(targets):
    with pytest.raises(UnsupportedError, match=r"int8 needs a quantised \(QDQ\) model.*implicit calibration is not used"):
        plan(targets, precision="int8")
    p = plan(targets, precision="int8", facts=QDQ)
    assert p.set_flags == ("INT8", "FP16")
    assert any("Q/DQ" in n for n in p.notes)


def test_bf16_is_refused(targets):
    with pytest.raises(UnsupportedError, match="does not build bf16"):
        plan(targets, precision="bf16")


def test_workspace_from_target_then_option(targets):
    assert plan(targets, "jetson-agx-orin").workspace_bytes == 4096 * 2**20
    assert plan(targets, "jetson-nano").workspace_bytes == 512 * 2**20
    assert plan(targets, "jetson-nano", workspace_mib=64).workspace_bytes == 64 * 2**20
    assert plan(targets, builder_optimization_level=5).optimization_level == 5


def test_dla_core_with_gpu_fallback(targets):
    p = plan(targets, "jetson-agx-orin", "fp16", dla_core=1)
    assert p.dla_core == 1 and p.set_flags == ("FP16", "GPU_FALLBACK")
    p = plan(targets, "jetson-xavier-nx", "int8", QDQ, dla_core=0, gpu_fallback=False)
    assert p.set_flags == ("INT8", "FP16") and p.dla_core == 0
    assert any("no GPU fallback" in n for n in p.notes)


def test_dla_errors(targets):
    with pytest.raises(UnsupportedError, match="jetson-orin-nano has no DLA cores"):
        plan(targets, "jetson-orin-nano", "fp16", dla_core=0)
    with pytest.raises(BadInputError, match="dla_core 2: target jetson-agx-orin has DLA cores 0-1"):
        plan(targets, "jetson-agx-orin", "fp16", dla_core=2)
    with pytest.raises(UnsupportedError, match="DLA computes in fp16 or int8 only"):
        plan(targets, "jetson-agx-orin", "fp32", dla_core=0)


def test_sparsity_from_model_metadata(targets):
    sparse = ModelFacts(IMAGE, False, "2:4")
    assert "SPARSE_WEIGHTS" in plan(targets, "jetson-orin-nano", "fp16", sparse).set_flags
    assert "SPARSE_WEIGHTS" not in plan(targets, "jetson-orin-nano", "fp16", sparse, sparse_weights="off").set_flags
    # Volta (7.2) has no sparse tensor cores: not set, and said so.
    p = plan(targets, "jetson-xavier-nx", "fp16", sparse)
    assert "SPARSE_WEIGHTS" not in p.set_flags and any("compute capability 8.0+" in n for n in p.notes)
    # another pattern in the metadata: dense, with a note
    p = plan(targets, "jetson-orin-nano", "fp16", ModelFacts(IMAGE, False, "unstructured"))
    assert "SPARSE_WEIGHTS" not in p.set_flags and any("'unstructured'" in n for n in p.notes)
    p = plan(targets, "jetson-orin-nano", "fp16", DENSE, sparse_weights="on")
    assert "SPARSE_WEIGHTS" in p.set_flags and any("without edgecc.sparsity=2:4" in n for n in p.notes)


def test_model_facts_reads_sparsity_and_qdq(tmp_path):
    from edgecc.zoo import get

    prepared = prepare_model("zoo:tinycnn")
    facts = model_facts(prepared.model, prepared.inputs)
    assert facts.sparsity is None and not facts.has_qdq
    prepared.model.metadata_props[SPARSITY_KEY] = " 2:4 "
    assert model_facts(prepared.model, prepared.inputs).sparsity == "2:4"
    # and it survives saving and preparing again (the compare path re-reads the model from a file)
    from edgecc.graph.io import save_model

    path = save_model(prepared.model, tmp_path / "m.onnx")
    again = prepare_model(str(path))
    assert model_facts(again.model, again.inputs).sparsity == "2:4"
    assert get("tinycnn") is not None


def test_shape_ranges_make_a_profile(targets):
    p = plan(targets, shape_ranges={"x": {"min": [1, 3, 32, 32], "max": [8, 3, 32, 32]}})
    assert len(p.profiles) == 1
    prof = p.profiles[0]
    assert (prof.input, prof.min, prof.opt, prof.max) == ("x", (1, 3, 32, 32), (1, 3, 32, 32), (8, 3, 32, 32))


@pytest.mark.parametrize("ranges, message", [
    ({"y": {"min": [1], "max": [2]}}, "'y' is not an input of the model; inputs: x"),
    ({"x": {"min": [1, 3], "max": [8, 3]}}, "need 4 dimensions"),
    ({"x": {"min": [2, 3, 32, 32], "max": [8, 3, 32, 32]}}, r"need 1 <= min <= \[1, 3, 32, 32\]"),
    ({"x": {"min": [0, 3, 32, 32], "max": [8, 3, 32, 32]}}, "need 1 <= min"),
])
def test_shape_range_errors(targets, ranges, message):
    with pytest.raises(BadInputError, match=message):
        plan(targets, shape_ranges=ranges)


def test_options_are_validated_at_the_boundary():
    be = get_backend("tensorrt")
    assert be.parse_options({"dla_core": 1}).dla_core == 1
    with pytest.raises(BadInputError, match="tensorrt option builder_optimization_level"):
        be.parse_options({"builder_optimization_level": 6})
    with pytest.raises(BadInputError, match="tensorrt option workspace"):
        be.parse_options({"workspace": 10})
    with pytest.raises(BadInputError, match="tensorrt option sparse_weights"):
        be.parse_options({"sparse_weights": "yes"})
    assert isinstance(be.parse_options({"shape_ranges": {"x": {"min": [1], "max": [4]}}}).shape_ranges["x"], ShapeRange)


# --- the mapping onto builder-config calls (recording test double) ---

def apply(plan_, flags=None, dla_cores=0, cache=b"", version="10.3.0"):
    from tensorrt_test_double import TENSORRT_10_FLAGS

    trt = tensorrt_module_double(flags or TENSORRT_10_FLAGS, version)
    calls: list = []
    apply_build_plan(trt, RecordingBuilderDouble(dla_cores), RecordingConfigDouble(calls), plan_, cache)
    return calls


def test_fp16_maps_to_these_calls(targets):
    calls = apply(plan(targets, "jetson-orin-nano", "fp16", workspace_mib=256, builder_optimization_level=4), cache=b"old")
    assert calls == [
        ("set_memory_pool_limit", "WORKSPACE", 256 * 2**20),
        ("set", "builder_optimization_level", 4),
        ("set", "profiling_verbosity", calls[2][2]),
        ("set_flag", "FP16"),
        ("create_timing_cache", b"old"),
        ("set_timing_cache", b"old", False),
    ]
    assert calls[2][2].name == "DETAILED"


def test_fp32_clears_tf32_and_no_cache_means_no_cache_calls(targets):
    calls = apply(plan(targets), cache=None)
    assert ("clear_flag", "TF32") in calls
    assert not [c for c in calls if c[0] in ("set_flag", "create_timing_cache", "set_timing_cache")]


def test_dla_maps_to_device_type_and_core(targets):
    calls = apply(plan(targets, "jetson-agx-orin", "int8", QDQ, dla_core=1), dla_cores=2)
    flags = [c[1] for c in calls if c[0] == "set_flag"]
    assert flags == ["INT8", "FP16", "GPU_FALLBACK"]
    sets = {c[1]: c[2] for c in calls if c[0] == "set"}
    assert sets["default_device_type"].name == "DLA" and sets["DLA_core"] == 1


def test_dla_core_missing_on_the_device(targets):
    with pytest.raises(UnsupportedError, match="dla_core 1: this device has 0 DLA core"):
        apply(plan(targets, "jetson-agx-orin", "fp16", dla_core=1), dla_cores=0)


def test_profile_and_sparsity_calls(targets):
    p = plan(targets, "jetson-orin-nano", "fp16", ModelFacts(IMAGE, False, "2:4"),
             shape_ranges={"x": {"min": [1, 3, 32, 32], "max": [4, 3, 32, 32]}})
    calls = apply(p)
    assert [c[1] for c in calls if c[0] == "set_flag"] == ["FP16", "SPARSE_WEIGHTS"]
    assert ("add_optimization_profile", (("x", (1, 3, 32, 32), (1, 3, 32, 32), (4, 3, 32, 32)),)) in calls


def test_a_tensorrt_without_the_fp16_flag_is_a_clear_error(targets):
    # TensorRT releases that build only strongly typed networks drop the precision flags.
    with pytest.raises(UnsupportedError, match="TensorRT 11.0.0 has no builder flag FP16.*strongly typed"):
        apply(plan(targets, "jetson-orin-nano", "fp16"), flags=("TF32", "SPARSE_WEIGHTS"), version="11.0.0")
    # clearing a flag that does not exist is not an error (it cannot be on)
    calls = apply(plan(targets), flags=("FP16",), version="11.0.0")
    assert not [c for c in calls if c[0] == "clear_flag"]


def test_relax_ranged_inputs_marks_only_varying_dims(tmp_path):
    from edgecc.backends.tensorrt.compile import relax_ranged_inputs

    prepared = prepare_model("zoo:tinycnn")
    name = prepared.inputs[0].name
    shape = list(prepared.inputs[0].shape)
    rng = ShapeRange(min=tuple([1] + shape[1:]), max=tuple([8] + shape[1:]))
    relax_ranged_inputs(prepared.model, {name: rng})
    dims = list(prepared.model.graph.inputs[0].shape)
    assert isinstance(dims[0], ir.SymbolicDim) and dims[1:] == shape[1:]
    # inferred static shapes downstream are dropped (they would contradict the dynamic batch); types stay
    assert all(v.shape is None and v.type is not None for n in prepared.model.graph for v in n.outputs)
    # the relaxed file is a valid model that takes other batch sizes (onnxruntime as the check)
    import numpy as np
    import onnxruntime as ort

    from edgecc.graph.io import save_model

    path = save_model(prepared.model, tmp_path / "relaxed.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {name: np.zeros([3] + shape[1:], np.float32)})[0]
    assert out.shape[0] == 3
    # a range with min == max changes nothing
    again = prepare_model("zoo:tinycnn")
    relax_ranged_inputs(again.model, {name: ShapeRange(min=tuple(shape), max=tuple(shape))})
    assert list(again.model.graph.inputs[0].shape) == shape
    assert all(v.shape is not None for n in again.model.graph for v in n.outputs)
