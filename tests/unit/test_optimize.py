"""The optimize pipeline on whole models: fewer or equal nodes than onnxsim and onnxslim, the interface
and values unchanged (edgecc.graph.equivalence), every pass reported; the CLI's output and exit codes."""

from __future__ import annotations

import json

import onnx
import onnx_ir as ir
import onnxsim
import onnxslim
import pytest
from typer.testing import CliRunner

from edgecc.cli import app
from edgecc.transform import copy_model
from edgecc.graph.equivalence import check_equivalent, interface_changes
from edgecc.graph.io import prepare_model, to_proto
from edgecc.graph.passes import count_nodes, optimize_model

runner = CliRunner()


def _nodes(proto: onnx.ModelProto) -> int:
    return count_nodes(ir.serde.deserialize_model(proto))


@pytest.mark.parametrize("name", ["tinycnn", "mobilenetv2", "bert-tiny"])
def test_optimize_no_more_nodes_than_onnxsim_or_onnxslim_and_same_function(name):
    prepared = prepare_model(f"zoo:{name}")
    original = copy_model(prepared.model)
    proto = to_proto(prepared.model)
    simplified, ok = onnxsim.simplify(proto)
    slimmed = onnxslim.slim(proto)
    result = optimize_model(prepared.model)
    assert ok
    assert result.nodes_after <= _nodes(simplified)
    assert result.nodes_after <= _nodes(slimmed)
    assert result.nodes_after < result.nodes_before
    eq = check_equivalent(original, result.model)
    assert eq.ok, eq.describe()
    onnx.checker.check_model(to_proto(result.model), full_check=True)


def test_bert_layer_norms_are_fused_and_every_pass_is_reported():
    prepared = prepare_model("zoo:bert-tiny")
    result = optimize_model(prepared.model)
    ops = [n.op_type for n in result.model.graph]
    # 2 layers x 2 LayerNorms + the embeddings' one
    assert ops.count("LayerNormalization") == 5 and "ReduceMean" not in ops and "Sqrt" not in ops
    assert sum(v for k, v in result.fired.items() if k.startswith("LayerNormFusion")) == 5
    names = [r.name for r in result.records]
    assert {"onnxsim", "fusion", "FoldConstantsPass", "RemoveUnusedNodesPass"} <= set(names)
    for rec in result.records:
        assert rec.time_ms >= 0 and rec.nodes_before > 0 and rec.nodes_after > 0
        assert rec.modified or rec.nodes_after == rec.nodes_before
    fusion = [r for r in result.records if r.name == "fusion" and r.modified]
    assert fusion and fusion[0].nodes_after < fusion[0].nodes_before


def test_interface_changes_are_named():
    a = prepare_model("zoo:tinycnn").model
    b = copy_model(a)
    b.graph.outputs[0].shape = ir.Shape([1, 7])
    assert interface_changes(a, b) == ["output 'logits' shape changed: [1, 10] -> [1, 7]"]
    assert not check_equivalent(a, b).ok


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_optimize_writes_verified_model_and_report(tmp_path):
    out, report = tmp_path / "opt.onnx", tmp_path / "report.json"
    code, stdout, stderr = run("optimize", "zoo:mobilenetv2", "-o", out, "--report", report, "--explain")
    assert code == 0, stderr
    assert "152 -> 100 nodes" in stdout and "verified against the original" in stdout
    data = json.loads(report.read_text())
    assert data["nodes_before"] == 152 and data["nodes_after"] == 100
    assert data["verification"][0]["ok"] is True and data["verification"][0]["max_rel_error"] <= 1e-4
    assert count_nodes(ir.load(out)) == 100


def test_cli_optimize_bad_input(tmp_path):
    code, _, stderr = run("optimize", "zoo:tinycnn", "-o", tmp_path / "x.txt")
    assert code == 2 and "must be an .onnx file" in stderr and "Traceback" not in stderr
    src = tmp_path / "m.onnx"
    code, _, _ = run("zoo", "export", "tinycnn", "-o", src)
    before = src.read_bytes()
    code, _, stderr = run("optimize", src, "-o", src, "--input-shape", "input:1,3,32,32")
    assert code == 2 and "is the input model" in stderr and src.read_bytes() == before
    code, _, stderr = run("optimize", "zoo:tinycnn", "-o", tmp_path / "y.onnx", "--backend", "nosuch")
    assert code == 2 and "unknown backend 'nosuch'" in stderr


def test_a_failing_pass_is_undone_and_reported():
    from edgecc.graph.passes import ReportingPassManager

    class Breaks(ir.passes.InPlacePass):
        def call(self, model):
            model.graph.remove(next(iter(model.graph)), safe=False)  # half-done work, then a failure
            raise RuntimeError("tripped over this graph")

    model = prepare_model("zoo:tinycnn").model
    before = count_nodes(model)
    manager = ReportingPassManager([Breaks()], contain_failures=True)
    out = manager(model).model
    assert count_nodes(out) == before
    assert manager.records[0].details == {"failed": "RuntimeError: tripped over this graph"}
    eq = check_equivalent(prepare_model("zoo:tinycnn").model, out)
    assert eq.ok
    with pytest.raises(Exception):
        ReportingPassManager([Breaks()])(prepare_model("zoo:tinycnn").model)


def test_unknown_dims_of_the_original_may_become_known():
    a = prepare_model("zoo:tinycnn").model
    b = copy_model(a)
    a.graph.outputs[0].shape = ir.Shape(["N", 10])
    assert interface_changes(a, b) == []
    a.graph.outputs[0].shape = ir.Shape([-1, 10])  # paddle2onnx writes unknown dims as -1
    assert interface_changes(a, b) == []
    assert interface_changes(b, a) == ["output 'logits' shape changed: [1, 10] -> [-1, 10]"]


def test_identity_returning_an_outer_value_from_a_branch_is_kept():
    """silero-vad's If branches return outer tensors through an Identity; ONNX needs it there."""
    import onnx.helper as oh
    from onnx import TensorProto

    from conftest import make_model
    from edgecc.graph.equivalence import run_model
    from edgecc.graph.passes.standard import cleanup_passes

    vi = lambda n: oh.make_tensor_value_info(n, TensorProto.FLOAT, [2])  # noqa: E731
    then_g = oh.make_graph([oh.make_node("Identity", ["r"], ["t"])], "then", [], [vi("t")])
    else_g = oh.make_graph([oh.make_node("Neg", ["r"], ["e"])], "else", [], [vi("e")])
    proto = make_model(
        [oh.make_node("Relu", ["x"], ["r"]), oh.make_node("If", ["flag"], ["y"], then_branch=then_g, else_branch=else_g)],
        [vi("x"), oh.make_tensor_value_info("flag", TensorProto.BOOL, [])], [vi("y")],
    )
    model = ir.serde.deserialize_model(proto)
    for p in cleanup_passes():
        p(model)
    onnx.checker.check_model(to_proto(model), full_check=True)
    import numpy as np

    out = run_model(model, {"x": np.array([-1.0, 2.0], np.float32), "flag": np.array(True)})
    assert out["y"].tolist() == [0.0, 2.0]


def test_a_model_onnxruntime_cannot_run_is_one_clear_error(tmp_path):
    import onnx.helper as oh
    from onnx import TensorProto

    from conftest import make_model

    model = make_model(
        [oh.make_node("FooBar", ["x"], ["y"], domain="com.acme")],
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], domains=["com.acme"],
    )
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    code, _, stderr = run("optimize", path, "-o", tmp_path / "o.onnx")
    assert code == 2 and "onnxruntime cannot run the model as loaded" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "o.onnx").exists()


def test_cli_optimize_verifies_on_given_inputs_too(tmp_path):
    import numpy as np

    inputs = tmp_path / "in.npz"
    np.savez(inputs, input=np.full((1, 3, 32, 32), 0.5, np.float32))
    report = tmp_path / "r.json"
    code, _, stderr = run("optimize", "zoo:tinycnn", "-o", tmp_path / "o.onnx", "--inputs", inputs, "--report", report)
    assert code == 0, stderr
    checks = json.loads(report.read_text())["verification"]
    assert len(checks) == 2 and all(c["ok"] for c in checks)
    np.savez(inputs, input=np.zeros((1, 3, 8, 8), np.float32))
    code, _, stderr = run("optimize", "zoo:tinycnn", "-o", tmp_path / "o2.onnx", "--inputs", inputs)
    assert code == 2 and "the model needs float32[1, 3, 32, 32]" in stderr
