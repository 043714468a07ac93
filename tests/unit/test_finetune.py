"""Distillation fine-tuning (edgecc.graph.finetune): a model pruned by edgecc is trained towards the original's
outputs; the error against the original falls, the weights written back to ONNX reproduce the torch student in
onnxruntime, onnx.checker accepts the result, the loop stops at its bounds, and without torch the error names
the extra to install."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.data import DataSpec
from edgecc.errors import BadInputError, MissingExtra
from edgecc import transform
from edgecc.graph.finetune import WRITEBACK_TOLERANCE, finetune_distill

HAVE_TRAIN = all(importlib.util.find_spec(m) is not None for m in ("torch", "onnx2torch"))
_skip = pytest.mark.skipif(not HAVE_TRAIN, reason='torch and onnx2torch not installed: pip install "edgecc[train]"')


def needs_torch(test):
    return pytest.mark.train(_skip(test))
SAMPLES = 240


def small_cnn() -> onnx.ModelProto:
    """Seeded: input [1,3,12,12] -> Conv 16 -> Relu -> Conv 16 -> Clip(0,6) -> Add (residual) -> GlobalAveragePool ->
    Flatten -> MatMul 16x24 -> Add -> Relu -> Gemm (transB=0, alpha 0.5) -> logits [1,10]. The MatMul/Add head's
    weights reach torch as buffers, the Gemm's as an nn.Linear in its own layout: both are written back."""
    rng = np.random.default_rng(0)

    def init(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [init("w1", 16, 3, 3, 3), init("b1", 16), init("w2", 16, 16, 3, 3, scale=0.15), init("b2", 16),
             init("wm", 16, 24), init("bm", 24), init("wg", 24, 10), init("bg", 10),
             numpy_helper.from_array(np.float32(0.0), "lo"), numpy_helper.from_array(np.float32(6.0), "hi")]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"], name="clip2"),
        helper.make_node("Add", ["r1", "r2"], ["s"], name="residual"),
        helper.make_node("GlobalAveragePool", ["s"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "wm"], ["m"], name="matmul"),
        helper.make_node("Add", ["m", "bm"], ["mb"], name="matmul_bias"),
        helper.make_node("Relu", ["mb"], ["h"], name="relu3"),
        helper.make_node("Gemm", ["h", "wg", "bg"], ["logits"], name="head", alpha=0.5),
    ]
    graph = helper.make_graph(nodes, "small-cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime 1.31 reads up to IR 13; onnx 1.23 writes 14
    return model


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory):
    """(small_cnn's path, an .npz of SAMPLES seeded unlabelled samples, those samples)."""
    tmp = tmp_path_factory.mktemp("finetune")
    onnx.save(small_cnn(), tmp / "cnn.onnx")
    x = np.random.default_rng(1).standard_normal((SAMPLES, 3, 12, 12)).astype(np.float32)
    np.savez(tmp / "calib.npz", input=x)
    return tmp / "cnn.onnx", tmp / "calib.npz", x


@pytest.fixture(scope="module")
def pruned(cnn_files):
    """(teacher, student pruned by 0.5 with edgecc's measured pruning, feeds of SAMPLES unlabelled samples). The
    student is mean-compensated (``recover=False``): least-squares recovery, the default, leaves this seeded model
    0.057 from the teacher on held-out samples and 120 steps take it only to 0.051; the tests below measure
    training from the farther start."""
    path, calib, x = cnn_files
    tmp = path.parent
    transform.prune(tmp / "cnn.onnx", tmp / "pruned.onnx", ratio=0.5, calibration=DataSpec(str(calib)), recover=False)
    feeds = [{"input": x[i:i + 1]} for i in range(SAMPLES)]
    return ir.load(tmp / "cnn.onnx"), ir.load(tmp / "pruned.onnx"), feeds


def _input(model: ir.Model, node: str, index: int) -> np.ndarray:
    return next(n for n in model.graph if n.name == node).inputs[index].const_value.numpy()


def _weights(model: ir.Model) -> dict[str, np.ndarray]:
    return {name: v.const_value.numpy().copy() for name, v in model.graph.initializers.items()}


@pytest.fixture(scope="module")
def tuned(pruned):
    teacher, student, feeds = pruned
    calls = []
    result = finetune_distill(teacher, student, feeds, time_budget_s=600, max_steps=120, batch_size=32, lr=3e-3, threads=1,
                              progress=lambda *a: calls.append(a))
    return result, calls


@needs_torch
def test_pruning_removed_channels(pruned):
    teacher, student, _ = pruned
    assert _input(student, "conv1", 1).shape == (8, 3, 3, 3)  # 16 -> 8 channels: the test prunes for real
    assert _input(student, "head", 1).shape == (12, 10)  # 24 -> 12
    assert _input(teacher, "conv1", 1).shape == (16, 3, 3, 3)


@needs_torch
def test_finetuning_lowers_the_error_against_the_teacher(tuned):
    result, _ = tuned
    assert result.steps == 120 and result.stopped_by == "max_steps"
    assert result.held_out_samples == 24 and result.train_samples == SAMPLES - 24
    assert result.error_before > 0.05  # pruning by half moved the outputs
    assert result.error_after < result.error_before / 2, (result.error_before, result.error_after)
    assert result.loss_after < result.loss_before / 3
    assert len(result.trained) == 8  # both convolutions', the MatMul/Add head's and the Gemm's weights and biases
    assert result.frozen == {}  # Clip's bounds are attributes of its torch module, the scalars never trained


@needs_torch
def test_written_back_weights_reproduce_the_torch_student(pruned, tuned):
    from edgecc.graph.finetune.bridge import to_torch
    import torch

    _, student, feeds = pruned
    result, _ = tuned
    before, after = _weights(student), _weights(result.model)
    assert before.keys() == after.keys()
    assert all(before[k].shape == after[k].shape for k in before)
    assert not np.allclose(_input(student, "head", 1), _input(result.model, "head", 1))  # trained, the input left as it was
    assert not np.allclose(_input(student, "matmul", 1), _input(result.model, "matmul", 1))
    assert result.writeback.max_rel_error <= WRITEBACK_TOLERANCE.max_rel_error
    # independently: the written-back ONNX in onnxruntime against a fresh torch conversion of it
    onnx.checker.check_model(ir.to_proto(result.model), full_check=True)
    session = ort.InferenceSession(ir.to_proto(result.model).SerializeToString(), providers=["CPUExecutionProvider"])
    module = to_torch(result.model, train=False).module
    for feed in feeds[:8]:
        ref = session.run(None, feed)[0]
        with torch.no_grad():
            got = module(torch.from_numpy(feed["input"])).numpy()
        assert np.abs(ref - got).max() <= 1e-4 * max(1.0, np.abs(ref).max())  # WRITEBACK_TOLERANCE's bound


@needs_torch
def test_progress_reports_every_step(tuned):
    _, calls = tuned
    assert [c[0] for c in calls] == list(range(1, 121))
    assert all(c[1] == 120 for c in calls)
    assert all(math.isfinite(c[2]) and c[3] >= 0 for c in calls)


@needs_torch
def test_a_zero_time_budget_trains_nothing(pruned):
    teacher, student, feeds = pruned
    result = finetune_distill(teacher, student, feeds, time_budget_s=0, epochs=5)
    assert result.steps == 0 and result.stopped_by == "time_budget"
    assert all(np.array_equal(_weights(student)[k], w) for k, w in _weights(result.model).items())
    assert result.error_after == pytest.approx(result.error_before, rel=1e-6)


@needs_torch
def test_epochs_bound_the_loop(pruned):
    teacher, student, feeds = pruned
    result = finetune_distill(teacher, student, feeds[:100], time_budget_s=600, epochs=2, batch_size=16, held_out=0.2)
    assert result.stopped_by == "epochs"
    assert result.train_samples == 80 and result.steps == 2 * 5 and result.epochs == pytest.approx(2.0)


@needs_torch
def test_mismatched_models_are_rejected(pruned):
    teacher, _, feeds = pruned
    other = ir.from_proto(onnx.shape_inference.infer_shapes(small_cnn()))
    other.graph.inputs[0].name = "image"
    with pytest.raises(BadInputError, match="inputs and outputs must be the teacher's"):
        finetune_distill(teacher, other, feeds, time_budget_s=1)
    with pytest.raises(BadInputError, match="lacks the model input"):
        finetune_distill(teacher, teacher, [{"x": feeds[0]["input"]}], time_budget_s=1)


def test_without_torch_the_error_names_the_extra(pruned, torch_missing):
    teacher, student, feeds = pruned
    with pytest.raises(MissingExtra, match=r'pip install "edgecc\[train\]"') as info:
        finetune_distill(teacher, student, feeds, time_budget_s=1)
    assert info.value.exit_code == 3


@needs_torch
def test_an_op_torch_cannot_run_is_a_clear_error():
    from edgecc.errors import UnsupportedError

    graph = helper.make_graph(
        [helper.make_node("Hardmax", ["x"], ["h"]), helper.make_node("MatMul", ["h", "w"], ["y"])], "hardmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.ones((4, 3), np.float32), "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    model = ir.from_proto(proto)
    feeds = [{"x": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)} for _ in range(4)]
    with pytest.raises(UnsupportedError, match="cannot be converted to torch.*Hardmax"):
        finetune_distill(model, model, feeds, time_budget_s=1)
