"""Pruning measured on data: channels ranked by activation, removed channels' means folded into the next
layer's bias (--no-recover) or the next layers re-fitted by least squares (the default). Both exact on channels
that are constant, whatever layer reads them; more accuracy kept on a trained model than weight norms give; clear
errors without real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc import api
from edgecc.errors import BadInputError

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
CONSTANT = [5, 6, 7]  # conv1 channels with zero weights: relu(bias) is all they ever hold


def model_with_constant_channels(reader: str) -> onnx.ModelProto:
    """input [1,4,8,8] -> conv1 (8 channels, 3 of them constant: 0.5, 1.0 and relu(-0.3) = 0) -> Relu -> ``reader``,
    a layer that sums over those 8 channels (a 1x1 Conv, a Gemm after pooling, a MatMul + Add after pooling)."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    w1[CONSTANT] = 0.0
    b1 = rng.standard_normal(8).astype(np.float32)
    b1[CONSTANT] = [0.5, 1.0, -0.3]
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1")]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1")]
    if reader == "conv":
        inits += [numpy_helper.from_array(rng.standard_normal((6, 8, 1, 1)).astype(np.float32), "w2"),
                  numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b2")]
        nodes.append(helper.make_node("Conv", ["r1", "w2", "b2"], ["out"], name="reader"))
        out_shape = [1, 6, 8, 8]
    else:
        nodes += [helper.make_node("GlobalAveragePool", ["r1"], ["p"], name="pool"),
                  helper.make_node("Flatten", ["p"], ["f"], name="flatten")]
        if reader == "gemm":
            inits += [numpy_helper.from_array(rng.standard_normal((3, 8)).astype(np.float32), "wg")]  # no bias: one is made
            nodes.append(helper.make_node("Gemm", ["f", "wg"], ["out"], name="reader", transB=1, alpha=0.5))
        else:
            inits += [numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "wm"),
                      numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "bm")]
            nodes += [helper.make_node("MatMul", ["f", "wm"], ["mm"], name="reader"),
                      helper.make_node("Add", ["mm", "bm"], ["out"], name="bias")]
        out_shape = [1, 3]
    graph = helper.make_graph(nodes, "constant-channels", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def samples(tmp_path) -> Path:
    path = tmp_path / "samples.npz"
    np.savez(path, input=np.random.default_rng(1).standard_normal((16, 4, 8, 8)).astype(np.float32))
    return path


@pytest.mark.parametrize("recover", [False, True])
@pytest.mark.parametrize("reader", ["conv", "gemm", "matmul"])
def test_constant_channels_are_removed_and_compensated_exactly(reader, recover, samples, tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(model_with_constant_channels(reader), src)
    outcome = api.prune(src, tmp_path / "p.onnx", ratio=3 / 8, calibration=str(samples), recover=recover)
    assert outcome.how == ("least-squares recovery, 1 step" if recover else "mean-compensated")
    [group] = [g for g in outcome.plan.groups if g.kept < g.channels]
    assert group.layers == ["conv1"] and (group.channels, group.kept) == (8, 5) and group.criterion == "activation"
    pruned = onnx.load(tmp_path / "p.onnx")
    w1 = next(numpy_helper.to_array(t) for t in pruned.graph.initializer if numpy_helper.to_array(t).ndim == 4
              and numpy_helper.to_array(t).shape[1] == 4)
    assert w1.shape[0] == 5 and np.abs(w1).sum(axis=(1, 2, 3)).min() > 0  # the three constant channels went
    e = outcome.equivalence.error
    assert e.max_abs_error < 1e-5 and e.cosine > 0.999999, e  # their values live on in the reader's bias


def test_without_compensation_the_same_removal_changes_the_outputs(samples, tmp_path):
    """The control: the same plan materialised without the means is not the original model."""
    from edgecc.data import DataSpec, load_dataset
    from edgecc.graph.equivalence import check_equivalent
    from edgecc.graph.io import prepare_model
    from edgecc.graph.prune import build_dependency_graph, materialise, plan_pruning
    from edgecc.graph.prune.compensate import measure

    src = tmp_path / "m.onnx"
    onnx.save(model_with_constant_channels("conv"), src)
    prepared = prepare_model(str(src))
    original = prepared.model.clone()
    graph = build_dependency_graph(prepared.model)
    measure(graph, load_dataset(DataSpec(str(samples)), prepared.inputs).batches)
    materialise(plan_pruning(graph, ratio=3 / 8, criterion="activation"))
    assert check_equivalent(original, prepared.model).error.max_abs_error > 0.1


def test_trained_model_keeps_more_accuracy_when_pruning_is_measured_on_data(tmp_path):
    """The bundled MNIST CNN (real digits): pruned by half, with the calibration digits the measured criterion and
    least-squares recovery (the default with data) keep more of its top-1 accuracy on the 1,000 held-out digits
    than weight norms alone."""
    model, calib, held_out = DATA / "mnist_cnn.onnx", DATA / "mnist_calib.npz", DATA / "mnist_eval.npz"
    api.prune(model, tmp_path / "l1.onnx", ratio=0.5)
    api.prune(model, tmp_path / "measured.onnx", ratio=0.5, calibration=str(calib))
    accuracy = {}
    for name in ("l1", "measured"):
        api.compile(tmp_path / f"{name}.onnx", "host", tmp_path / name, backend="onnxruntime")
        accuracy[name] = api.evaluate(tmp_path / name, str(held_out)).top1
    original = api.evaluate(api.compile(model, "host", tmp_path / "o", backend="onnxruntime").path, str(held_out)).top1
    assert accuracy["measured"] > accuracy["l1"] + 5, accuracy
    assert accuracy["measured"] <= original + 1


def test_measured_pruning_needs_real_data(tmp_path):
    with pytest.raises(BadInputError, match="--criterion activation is measured on data"):
        api.prune("zoo:tinycnn", tmp_path / "p.onnx", ratio=0.3, criterion="activation")
    with pytest.raises(BadInputError, match="not random"):
        api.prune("zoo:tinycnn", tmp_path / "p.onnx", ratio=0.3, calibration="random")
    assert not (tmp_path / "p.onnx").exists()


def test_compile_records_measured_pruning_in_the_manifest(tmp_path):
    art = api.compile(DATA / "mnist_cnn.onnx", "host", tmp_path / "a", backend="onnxruntime", prune=0.3,
                      calibration=str(DATA / "mnist_calib.npz"))
    from edgecc.graph.prune.allocate import DEFAULT_ALLOCATION

    assert any(p.startswith(f"prune(ratio=0.3,criterion=activation,allocation={DEFAULT_ALLOCATION},least-squares-recovered,"
                            "round-to=8,removed=")
               for p in art.manifest.passes), art.manifest.passes
    plain = api.compile(DATA / "mnist_cnn.onnx", "host", tmp_path / "b", backend="onnxruntime", prune=0.3)
    assert any(p.startswith("prune(ratio=0.3,criterion=l1,round-to=8,removed=") for p in plain.manifest.passes)
