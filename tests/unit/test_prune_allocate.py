"""Non-uniform pruning by measured sensitivity (edgecc.graph.prune.allocate): the FLOPs model counts what pruning
leaves exactly; on a seeded model where one group is nearly free to cut (half its channels are 1% copies of the
others) and the other is not, the allocation keeps more of the sensitive one, at no more FLOPs than uniform
pruning and less than one channel's FLOPs below them; the choice reaches the CLI's report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest
from onnx import TensorProto, numpy_helper
from typer.testing import CliRunner

from conftest import make_model
from edgecc.cli import app
from edgecc.errors import BadInputError
from edgecc.graph.analysis import analyze
from edgecc.graph.io import prepare_model
from edgecc.graph.passes import fold_shape_computations
from edgecc.graph.prune import build_dependency_graph, materialise, plan_pruning
from edgecc.graph.prune.allocate import FlopsModel
from edgecc.graph.prune.iterative import prune_iteratively

F = TensorProto.FLOAT
DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"


def _arr(a, name):
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def two_group_model() -> onnx.ModelProto:
    """x [1,4,8,8] -> conv1 1x1 (8) -> Relu -> conv2 3x3 (8; channels 4..7 are 0.01 x channels 0..3) -> Relu ->
    conv3 1x1 (4) -> y. Cutting conv2 to 4 channels loses nothing the re-fit of conv3 cannot restore; every channel
    of conv1 carries its own rectified signal. conv2 costs the most FLOPs."""
    rng = np.random.default_rng(3)
    w2, b2 = rng.standard_normal((8, 8, 3, 3)), rng.standard_normal(8)
    w2[4:], b2[4:] = 0.01 * w2[:4], 0.01 * b2[:4]
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"), oh.make_node("Relu", ["c1"], ["r1"]),
             oh.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             oh.make_node("Relu", ["c2"], ["r2"]), oh.make_node("Conv", ["r2", "w3", "b3"], ["y"], name="conv3")]
    inits = [_arr(rng.standard_normal((8, 4, 1, 1)), "w1"), _arr(rng.standard_normal(8), "b1"), _arr(w2, "w2"),
             _arr(b2, "b2"), _arr(rng.standard_normal((4, 8, 1, 1)), "w3"), _arr(rng.standard_normal(4), "b3")]
    return make_model(nodes, [oh.make_tensor_value_info("x", F, [1, 4, 8, 8])], [oh.make_tensor_value_info("y", F, [1, 4, 8, 8])], inits)


def feeds(count: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)} for _ in range(count)]


def folded(model: ir.Model) -> ir.Model:
    fold_shape_computations(model)
    return model


@pytest.mark.parametrize("source", ["two_group", "mnist_cnn"])
@pytest.mark.parametrize("ratio", [0.25, 0.6])
def test_the_flops_model_counts_what_materialised_pruning_leaves(source, ratio):
    model = folded(ir.serde.deserialize_model(two_group_model()) if source == "two_group"
                   else prepare_model(str(DATA / "mnist_cnn.onnx")).model)
    before = analyze(model).flops
    graph = build_dependency_graph(model)
    plan = plan_pruning(graph, ratio=ratio)
    groups = [g for g in plan.groups if g.frozen is None]
    flops = FlopsModel(graph, groups)
    assert flops(np.ones(len(groups))) == before
    predicted = flops(np.array([g.kept / g.channels for g in groups]))
    assert predicted == analyze(materialise(plan)).flops < before


@pytest.mark.parametrize("round_to", [1, 2])
def test_sensitivity_keeps_more_of_the_sensitive_group_at_the_flops_of_uniform_pruning(round_to):
    calibration = feeds(16, 0)
    uniform = prune_iteratively(ir.serde.deserialize_model(two_group_model()), 0.25, 1, calibration, round_to=round_to)
    result = prune_iteratively(ir.serde.deserialize_model(two_group_model()), 0.25, 1, calibration, round_to=round_to,
                               allocation="sensitivity")
    kept = {g.layers[0]: g.kept for g in result.plan.groups}
    assert {g.layers[0]: g.kept for g in uniform.plan.groups} == {"conv1": 6, "conv2": 6, "conv3": 4}
    assert kept["conv1"] > 6 and kept["conv2"] < 6, kept
    assert kept["conv1"] % round_to == kept["conv2"] % round_to == 0
    curves = {c.layer: c for c in result.allocation.groups}
    assert curves["conv2"].error[-1] < 1e-3 < curves["conv1"].error[-1]  # the measurement that drove it
    # FLOPs: at most uniform's, and less than one channel's FLOPs (of any group, at the counts chosen) below them
    spent, budget = analyze(result.model).flops, analyze(uniform.model).flops
    model = folded(ir.serde.deserialize_model(two_group_model()))
    graph = build_dependency_graph(model)
    groups = [g for g in plan_pruning(graph, ratio=0.25).groups if g.frozen is None]
    flops = FlopsModel(graph, groups)
    at = np.array([kept[g.layers[0]] / g.channels for g in groups])
    one_channel = max(flops(at + np.eye(len(groups))[i] / g.channels) - flops(at) for i, g in enumerate(groups))
    assert budget - one_channel < spent <= budget, (spent, budget, one_channel)
    assert result.allocation.flops_planned == spent and result.allocation.flops_budget == budget


def test_an_excluded_group_is_neither_measured_nor_cut():
    result = prune_iteratively(ir.serde.deserialize_model(two_group_model()), 0.25, 1, feeds(8, 0), exclude={"conv1"},
                               allocation="sensitivity")
    assert [c.layer for c in result.allocation.groups] == ["conv2"]
    assert {g.layers[0]: g.kept for g in result.plan.groups}["conv1"] == 8


def test_allocation_is_in_the_report_and_checked(tmp_path):
    src, calib = tmp_path / "m.onnx", tmp_path / "calib.npz"
    onnx.save(two_group_model(), src)
    np.savez(calib, x=np.concatenate([f["x"] for f in feeds(8, 1)]))
    runner = CliRunner()
    res = runner.invoke(app, ["prune", str(src), "-o", str(tmp_path / "out.onnx"), "--ratio", "0.25", "--calibration",
                              str(calib), "--allocation", "sensitivity", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["allocation"]["method"] == "sensitivity"
    assert [g["layer"] for g in report["allocation"]["groups"]] == ["conv1", "conv2"]
    assert report["after"]["flops"] <= report["allocation"]["flops_budget"]
    res = runner.invoke(app, ["prune", str(src), "-o", str(tmp_path / "o2.onnx"), "--ratio", "0.25", "--allocation",
                              "sensitivity"])
    assert res.exit_code != 0 and "--allocation sensitivity" in res.output and "--calibration" in res.output
    with pytest.raises(BadInputError, match="unknown --allocation 'greedy'"):
        prune_iteratively(ir.serde.deserialize_model(two_group_model()), 0.25, 1, feeds(4, 0), allocation="greedy")
