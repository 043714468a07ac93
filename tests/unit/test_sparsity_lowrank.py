"""Sparsity (unstructured, 2:4) and low-rank factorisation: exact counts, metadata, FLOPs, output error."""

from __future__ import annotations

import json

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
from edgecc import api
from edgecc.graph.equivalence import REWRITE_TOLERANCE
from edgecc.graph.io import prepare_model
from edgecc.graph.lowrank import factorize_model
from edgecc.graph.prune.sparsity import METADATA_KEY, sparsify_model

F = TensorProto.FLOAT


def _low_rank(rng, k, n, r):
    return (rng.standard_normal((k, r)) @ rng.standard_normal((r, n)) / np.sqrt(r)).astype(np.float32)


def low_rank_net():
    """x[2,8,64] -> MatMul(64x64, rank 4) -> Relu -> 1x1 Conv (32->48, rank 3) -> Gemm (transB, rank 5) with a full-rank tail."""
    rng = np.random.default_rng(0)
    conv_w = _low_rank(rng, 48, 32, 3)[:, :, None, None]
    nodes = [
        oh.make_node("MatMul", ["x", "wm"], ["m"]), oh.make_node("Relu", ["m"], ["mr"]),
        oh.make_node("Reshape", ["mr", "s"], ["img"]),
        oh.make_node("Conv", ["img", "wc", "bc"], ["c"], kernel_shape=[1, 1], pads=[1, 1, 1, 1], strides=[2, 2]),
        oh.make_node("Flatten", ["c"], ["f"]),
        oh.make_node("Gemm", ["f", "wg", "bg"], ["g"], transB=1, alpha=0.5, beta=2.0),
        oh.make_node("MatMul", ["g", "wfull"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(_low_rank(rng, 64, 64, 4), "wm"),
        numpy_helper.from_array(np.array([1, 32, 4, 8], np.int64), "s"),
        numpy_helper.from_array(conv_w, "wc"), numpy_helper.from_array(rng.standard_normal(48).astype(np.float32), "bc"),
        numpy_helper.from_array(_low_rank(rng, 40, 48 * 3 * 5, 5), "wg"),
        numpy_helper.from_array(rng.standard_normal(40).astype(np.float32), "bg"),
        numpy_helper.from_array(rng.standard_normal((40, 40)).astype(np.float32), "wfull"),
    ]
    for i, node in enumerate(nodes):
        node.name = f"{node.op_type}_{i}"
    return make_model(nodes, [oh.make_tensor_value_info("x", F, [2, 8, 64])],
                      [oh.make_tensor_value_info("y", F, [1, 40])], inits)


@pytest.fixture
def low_rank_path(tmp_path):
    path = tmp_path / "lr.onnx"
    onnx.save(low_rank_net(), str(path))
    return path


def test_lowrank_recovers_true_ranks_exactly_and_lowers_flops(low_rank_path, tmp_path):
    outcome = api.lowrank(str(low_rank_path), tmp_path / "out.onnx", energy=1.0)
    ranks = {l.op_type: l.rank for l in outcome.result.layers}
    assert ranks == {"MatMul": 4, "Conv": 3, "Gemm": 5}
    assert all(l.weight_error < 1e-5 for l in outcome.result.layers)
    assert [v for v in outcome.result.skipped.values() if "would not lower FLOPs" in v] == [
        "rank 40 of [40x40] would not lower FLOPs"]
    assert outcome.after["flops"] < 0.5 * outcome.before["flops"]
    assert outcome.after["params"] < outcome.before["params"]
    assert outcome.equivalence.error.max_rel_error <= REWRITE_TOLERANCE.max_rel_error
    onnx.checker.check_model(str(tmp_path / "out.onnx"), full_check=True)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "out.onnx")).graph.node]
    assert ops.count("Conv") == 2 and ops.count("Gemm") == 2


def test_lowrank_lower_energy_lower_rank_larger_error(low_rank_path):
    full = api.lowrank(str(low_rank_path), None, energy=1.0)
    cut = api.lowrank(str(low_rank_path), None, energy=0.6)
    full_ranks = {l.node: l.rank for l in full.result.layers}
    cut_ranks = {l.node: l.rank for l in cut.result.layers if l.node in full_ranks}
    assert cut_ranks.keys() == full_ranks.keys()
    assert all(cut_ranks[k] <= full_ranks[k] for k in full_ranks) and cut_ranks != full_ranks
    assert cut.equivalence.error.max_abs_error > full.equivalence.error.max_abs_error
    with pytest.raises(BadInputError, match="--energy"):
        factorize_model(prepare_model(low_rank_path).model, 0.0)


def test_unstructured_sparsity_exact_count_and_metadata(tmp_path):
    outcome = api.sparsify("zoo:tinycnn", tmp_path / "s.onnx", pattern="unstructured", ratio=0.3)
    model = ir.load(tmp_path / "s.onnx")
    original = prepare_model("zoo:tinycnn").model
    for layer in outcome.result.layers:
        assert layer.zeros == round(layer.params * 0.3)
    convs = [n for n in model.graph if n.op_type == "Conv"]
    w = convs[1].inputs[1].const_value.numpy()
    w0 = [n for n in original.graph if n.op_type == "Conv"][1].inputs[1].const_value.numpy()
    kept = w != 0
    assert np.array_equal(w[kept], w0[kept]) and np.abs(w0[~kept]).max() <= np.abs(w0[kept]).min()
    meta = json.loads(model.metadata_props[METADATA_KEY])
    assert meta["pattern"] == "unstructured" and meta["ratio"] == 0.3 and len(meta["layers"]) == 6


def test_two_of_four_along_the_reduction_axis():
    model = prepare_model("zoo:tinycnn").model
    result = sparsify_model(model, "2:4", 0.5)
    assert "not a multiple of 4" in next(iter(result.skipped.values()))
    for node in model.graph:
        if node.name in {l.node for l in result.layers} and node.op_type == "Conv":
            w = node.inputs[1].const_value.numpy()
            groups = np.moveaxis(w, 1, -1).reshape(-1, 4)
            assert np.all((groups == 0).sum(axis=1) == 2)
    assert json.loads(model.metadata_props[METADATA_KEY])["pattern"] == "2:4"


def test_sparsity_bad_options():
    model = prepare_model("zoo:tinycnn").model
    with pytest.raises(BadInputError, match="must be 0.5"):
        sparsify_model(model, "2:4", 0.7)
    with pytest.raises(BadInputError, match="unknown --pattern"):
        sparsify_model(model, "1:8", 0.5)
    with pytest.raises(BadInputError, match="between 0 and 1"):
        sparsify_model(model, "unstructured", 1.0)


def test_cli_sparsify_and_lowrank(tmp_path, low_rank_path):
    runner = CliRunner()
    r = runner.invoke(app, ["sparsify", "zoo:tinycnn", "-o", str(tmp_path / "s.onnx"), "--pattern", "2:4"])
    assert r.exit_code == 0 and "2:4 sparsity 50.0%" in r.stdout
    r = runner.invoke(app, ["lowrank", str(low_rank_path), "-o", str(tmp_path / "l.onnx"), "--energy", "1", "--report", "-"])
    data = json.loads(r.stdout)
    assert r.exit_code == 0 and {l["rank"] for l in data["layers"]} == {3, 4, 5}
    r = runner.invoke(app, ["lowrank", str(low_rank_path), "-o", str(tmp_path / "l.onnx"), "--energy", "1.5"])
    assert r.exit_code == 2 and "--energy must be in (0, 1]" in r.stderr
