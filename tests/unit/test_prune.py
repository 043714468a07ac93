"""Channel pruning: shapes stay consistent and models run on residual, concat/split, depthwise,
transformer-block and ConvTranspose/Resize graphs; zero-channel elimination is exact (1e-5); barriers
are named; bad options give a clear error."""

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
from edgecc import transform
from edgecc.graph.analysis import analyze
from edgecc.graph.equivalence import EXACT_TOLERANCE, check_equivalent
from edgecc.graph.io import prepare_model, save_model
from edgecc.graph.passes import optimize_model
from edgecc.graph.prune import build_dependency_graph, materialise, plan_pruning
from edgecc.graph.rewrite._util import const_array

F = TensorProto.FLOAT
RNG = np.random.default_rng(1)


def _w(name, *shape):
    return numpy_helper.from_array((RNG.standard_normal(shape) * 0.3).astype(np.float32), name)


def _vi(name, shape):
    return oh.make_tensor_value_info(name, F, shape)


def concat_split_net(act: str = "Tanh"):
    """Two convs concatenated along channels, a Split of the result, a Slice of channels 1.., a ConvTranspose,
    Resize, Pad and pools."""
    nodes = [
        oh.make_node("Conv", ["x", "wa", "ba"], ["a"], pads=[1, 1, 1, 1]),
        oh.make_node("Relu", ["a"], ["ar"]),
        oh.make_node("Conv", ["x", "wb"], ["b"], pads=[1, 1, 1, 1]),
        oh.make_node(act, ["b"], ["bs"]),
        oh.make_node("Concat", ["ar", "bs"], ["cat"], axis=1),
        oh.make_node("Split", ["cat", "split"], ["s0", "s1"], axis=1),
        oh.make_node("MaxPool", ["s0"], ["p0"], kernel_shape=[2, 2], strides=[2, 2]),
        oh.make_node("ConvTranspose", ["p0", "wt", "bt"], ["up"], strides=[2, 2], kernel_shape=[2, 2]),
        oh.make_node("Slice", ["s1", "sl_start", "sl_end", "sl_axes"], ["s1s"]),
        oh.make_node("Resize", ["s1s", "", "scales"], ["r1"], mode="nearest"),
        oh.make_node("AveragePool", ["r1"], ["q1"], kernel_shape=[2, 2], strides=[2, 2]),
        oh.make_node("Pad", ["q1", "pads"], ["q1p"]),
        oh.make_node("Conv", ["q1p", "wq"], ["q2"]),
        oh.make_node("Add", ["up", "q2"], ["sum"]),
        oh.make_node("Conv", ["sum", "wc", "bc"], ["y"]),
    ]
    for node in nodes:
        node.name = node.output[0]
    inits = [
        _w("wa", 6, 3, 3, 3), _w("ba", 6), _w("wb", 4, 3, 3, 3),
        numpy_helper.from_array(np.array([5, 5], np.int64), "split"),
        _w("wt", 5, 8, 2, 2), _w("bt", 8),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        _w("wq", 8, 4, 3, 3), _w("wc", 3, 8, 1, 1), _w("bc", 3),
        numpy_helper.from_array(np.array([1], np.int64), "sl_start"), numpy_helper.from_array(np.array([2**62], np.int64), "sl_end"),
        numpy_helper.from_array(np.array([1], np.int64), "sl_axes"),
    ]
    return make_model(nodes, [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 3, 8, 8])], inits, opset=17)


def _prepared(proto, tmp_path, name="m.onnx"):
    path = tmp_path / name
    onnx.save(proto, str(path))
    return path


def mask_channels(model: ir.Model, fraction: float) -> int:
    """Zero, in place, the channels a ``fraction`` plan would remove: their producing weights and biases,
    per-channel constants added to them, and the BN shift. Returns how many channels were zeroed."""
    g = build_dependency_graph(model)
    plan = plan_pruning(g, ratio=fraction)

    def removed(v):
        m = g.maps.get(v)
        if m is None:
            return None
        mask = np.array([not plan.keep_root[g.find(a)] for a in m.atoms.tolist()])
        return mask if mask.any() else None

    def set_(node, i, arr):
        node.inputs[i].const_value = ir.tensor(arr, name=node.inputs[i].name)

    for node in model.graph:
        out = node.outputs[0]
        r = removed(out)
        if r is None:
            continue
        op = node.op_type
        if op == "Conv":
            w = const_array(node.inputs[1]).copy()
            w[r] = 0
            set_(node, 1, w)
            if len(node.inputs) > 2 and node.inputs[2] is not None:
                b = const_array(node.inputs[2]).copy()
                b[r] = 0
                set_(node, 2, b)
        elif op in ("MatMul", "Gemm", "ConvTranspose") and const_array(node.inputs[1]) is not None:
            w = const_array(node.inputs[1]).copy()
            if op == "Gemm" and node.attributes.get_int("transB", 0):
                w[r] = 0
            else:
                w[:, r] = 0
            set_(node, 1, w)
            if len(node.inputs) > 2 and node.inputs[2] is not None:
                b = const_array(node.inputs[2]).copy()
                b[..., r] = 0
                set_(node, 2, b)
        elif op == "Add":
            for i, v in enumerate(node.inputs):
                c = const_array(v)
                if c is not None and v not in g.maps and c.size == len(r):
                    c = c.copy().reshape(c.shape)
                    c.reshape(-1)[r] = 0
                    set_(node, i, c)
        elif op == "BatchNormalization":
            for i in (2, 3):
                c = const_array(node.inputs[i]).copy()
                c[r] = 0
                set_(node, i, c)
    return plan.removed_channels


def _zero_prune_case(model: ir.Model, tmp_path, fraction=0.4):
    zeroed = mask_channels(model, fraction)
    path = save_model(model, tmp_path / "masked.onnx")
    outcome = transform.prune(str(path), tmp_path / "pruned.onnx", zero_channels=True)
    return zeroed, outcome


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_zero_channel_elimination_is_exact_on_cnns(name, tmp_path):
    prepared = prepare_model(f"zoo:{name}")
    model = optimize_model(prepared.model).model  # BN folded: a zeroed Conv row gives an all-zero channel
    zeroed, outcome = _zero_prune_case(model, tmp_path)
    assert zeroed > 100
    assert outcome.plan.removed_channels == zeroed
    assert outcome.equivalence.ok and outcome.equivalence.error.max_rel_error <= EXACT_TOLERANCE.max_rel_error
    assert outcome.after["flops"] < 0.8 * outcome.before["flops"]
    onnx.checker.check_model(str(tmp_path / "pruned.onnx"), full_check=True)


def test_zero_channel_elimination_on_transformer_ffn(tmp_path):
    prepared = prepare_model("zoo:bert-tiny")
    zeroed, outcome = _zero_prune_case(prepared.model, tmp_path, 0.5)
    # the two FFN intermediate layers (512 -> 256 each) and one of two heads per layer; the hidden size is
    # fixed by LayerNorm
    assert zeroed == 512 + 2 and outcome.plan.removed_channels == zeroed
    assert outcome.equivalence.ok
    ops = analyze(ir.load(tmp_path / "pruned.onnx"))
    assert ops.params == outcome.after["params"] < outcome.before["params"]


def test_zero_channel_elimination_through_concat_split_convtranspose_resize(tmp_path):
    model = ir.serde.deserialize_model(concat_split_net())
    from edgecc.graph.io import infer_shapes

    infer_shapes(model)
    zeroed, outcome = _zero_prune_case(model, tmp_path, 0.5)
    # one more: conv a's channel 5 goes only into the channels the Slice drops, so nothing reads it
    assert zeroed > 0 and outcome.plan.removed_channels == zeroed + 1
    assert outcome.equivalence.ok


def test_sigmoid_of_a_zero_channel_is_not_zero(tmp_path):
    """Sigmoid(0) = 0.5: a channel zeroed before a Sigmoid still matters downstream and must stay."""
    model = ir.serde.deserialize_model(concat_split_net("Sigmoid"))
    from edgecc.graph.io import infer_shapes

    infer_shapes(model)
    wb = model.graph.initializers["wb"]
    w = wb.const_value.numpy().copy()
    w[0] = 0
    wb.const_value = ir.tensor(w, name="wb")
    path = save_model(model, tmp_path / "m.onnx")
    outcome = transform.prune(str(path), tmp_path / "p.onnx", zero_channels=True)
    by_layer = {g.layers[0]: g for g in outcome.plan.groups}
    assert by_layer["b"].kept == 4  # zeroed, but Sigmoid makes it 0.5
    assert by_layer["a"].kept == 5 and outcome.plan.removed_channels == 1  # a's channel 5: only the Slice reads it


@pytest.mark.parametrize("name,ratio", [("resnet18", 0.5), ("mobilenetv2", 0.3), ("bert-tiny", 0.5)])
def test_ratio_pruning_keeps_shapes_and_runs(name, ratio, tmp_path):
    outcome = transform.prune(f"zoo:{name}", tmp_path / "p.onnx", ratio=ratio, round_to=8)
    pruned = prepare_model(tmp_path / "p.onnx")
    assert [s.shape for s in pruned.outputs] == [s.shape for s in prepare_model(f"zoo:{name}").outputs]
    onnx.checker.check_model(str(tmp_path / "p.onnx"), full_check=True)
    assert outcome.after["flops"] < outcome.before["flops"]
    for g in outcome.plan.groups:
        if not g.frozen and g.channels >= 8:
            assert g.kept % 8 == 0 and 0 < g.kept < g.channels
    eq = outcome.equivalence
    assert not eq.interface_changes and np.isfinite(eq.error.max_abs_error)


def test_resnet50_half_pruning_quarter_flops():
    prepared = prepare_model("zoo:resnet50")
    before = analyze(prepared.model).flops
    g = build_dependency_graph(prepared.model)
    plan = plan_pruning(g, ratio=0.5)
    after = analyze(materialise(plan)).flops
    assert 0.2 < after / before < 0.32
    assert [b.reason for b in plan.barriers] == ["graph output (outputs are never changed)"]
    # stage outputs are coupled by the residual Adds: one group holds conv3 of every block and the downsample
    assert max(len(gr.layers) for gr in plan.groups) == 7


def test_barriers_are_named_and_freeze_their_groups():
    """BERT's residual stream goes through decomposed LayerNorms (ReduceMean over the hidden axis), so the
    dense layers writing into it are frozen by the residual Adds, each named."""
    prepared = prepare_model("zoo:bert-tiny")
    plan = plan_pruning(build_dependency_graph(prepared.model), ratio=0.5)
    adds = [b for b in plan.barriers if b.op_type == "Add"]
    assert len(adds) == 4 and all("does not broadcast along the channel axis" in b.reason for b in adds)
    frozen = [g for g in plan.groups if g.frozen]
    assert len(frozen) == 5 and all(g.frozen.startswith(("Add 'Add_", "output 'pooler_output'")) for g in frozen)


def test_attention_heads_are_pruned_whole(tmp_path):
    """Q, K and V of a layer form one group whose units are heads: half of 2 heads is 1 head, and the
    Reshapes that split and merge heads are rewritten to match."""
    prepared = prepare_model("zoo:bert-tiny")
    plan = plan_pruning(build_dependency_graph(prepared.model), ratio=0.5)
    heads = [g for g in plan.groups if len(g.layers) == 3]
    assert len(heads) == 2 and all(g.channels == 2 and g.kept == 1 for g in heads)
    model = materialise(plan)
    shapes = sorted(tuple(const_array(n.inputs[1]).tolist()) for n in model.graph if n.op_type == "Reshape")
    assert shapes == [(0, 0, 1, 64)] * 6 + [(0, 0, 64)] * 2
    path = save_model(model, tmp_path / "heads.onnx")
    assert [s.shape for s in prepare_model(path).outputs] == [(1, 128, 128), (1, 128)]


def test_unknown_op_is_a_barrier():
    proto = make_model(
        [oh.make_node("Conv", ["x", "w"], ["c"]), oh.make_node("FooBar", ["c"], ["f"], domain="com.acme"),
         oh.make_node("Relu", ["f"], ["y"])],
        [_vi("x", [1, 3, 4, 4])], [_vi("y", [1, 4, 4, 4])], [_w("w", 4, 3, 1, 1)], domains=["com.acme"],
    )
    g = build_dependency_graph(ir.serde.deserialize_model(proto))
    plan = plan_pruning(g, ratio=0.5)
    assert plan.groups[0].frozen.startswith("FooBar '") and plan.groups[0].frozen.endswith(": no pruning handler for com.acme::FooBar")
    assert plan.removed_channels == 0


def test_never_all_channels_of_a_group():
    prepared = prepare_model("zoo:tinycnn")
    plan = plan_pruning(build_dependency_graph(prepared.model), ratio=0.999)
    assert all(g.kept >= 1 for g in plan.groups)
    assert any(not g.frozen and g.kept == 1 for g in plan.groups)


def test_exclude_keeps_a_layer_and_bad_options_fail():
    prepared = prepare_model("zoo:tinycnn")
    first = next(n.name for n in prepared.model.graph if n.op_type == "Conv")
    plan = plan_pruning(build_dependency_graph(prepared.model), ratio=0.5, exclude={first})
    assert any(g.frozen == "excluded by --exclude" and first in g.layers for g in plan.groups)
    for kwargs, message in [
        ({"ratio": 0.0}, "between 0 and 1"), ({"ratio": 1.0}, "between 0 and 1"),
        ({"ratio": 0.5, "criterion": "l3"}, "unknown --criterion"), ({"ratio": 0.5, "round_to": 0}, "--round-to"),
    ]:
        with pytest.raises(BadInputError, match=message):
            plan_pruning(build_dependency_graph(prepared.model), **kwargs)
    with pytest.raises(BadInputError, match="does not have: nosuch"):
        transform.prune("zoo:tinycnn", None, ratio=0.5, exclude=["nosuch"], dry_run=True)


def test_bn_gamma_criterion_keeps_the_largest_gammas():
    prepared = prepare_model("zoo:resnet18")
    g = build_dependency_graph(prepared.model)
    plan = plan_pruning(g, ratio=0.5, criterion="bn-gamma")
    first_bn = next(n for n in prepared.model.graph if n.op_type == "BatchNormalization" and n.inputs[0].producer().name == "Conv_1")
    gamma = const_array(first_bn.inputs[1])
    cmap = g.maps[first_bn.inputs[0]]
    kept = np.array([plan.keep_root[g.find(a)] for a in cmap.atoms])
    assert kept.sum() == 32 and gamma[kept].min() >= gamma[~kept].max()


runner = CliRunner()


def test_cli_prune_dry_run_report_and_errors(tmp_path):
    report = tmp_path / "plan.json"
    r = runner.invoke(app, ["prune", "zoo:resnet18", "--ratio", "0.5", "--dry-run", "--report", str(report)])
    assert r.exit_code == 0, r.stderr
    assert "64 -> 32" in r.stdout and "barrier output 'logits'" in r.stdout and "FLOPs 3.6380 ->" in r.stdout
    data = json.loads(report.read_text())
    assert data["output"] is None and data["after"]["flops"] < data["before"]["flops"]
    assert not list(tmp_path.glob("*.onnx"))
    r = runner.invoke(app, ["prune", "zoo:tinycnn", "-o", str(tmp_path / "p.onnx"), "--ratio", "1.2"])
    assert r.exit_code == 2 and "--ratio must be between 0 and 1" in r.stderr and not (tmp_path / "p.onnx").exists()
    r = runner.invoke(app, ["prune", "zoo:tinycnn", "-o", str(tmp_path / "p.onnx"), "--ratio", "0.5", "--exclude", "nosuch"])
    assert r.exit_code == 2 and "nosuch" in r.stderr
    r = runner.invoke(app, ["prune", "zoo:tinycnn", "-o", str(tmp_path / "p.onnx")])
    assert r.exit_code == 2 and "--ratio" in r.stderr


def test_shape_computations_of_exports_do_not_block_pruning(tmp_path):
    """A legacy torch export computes view(N, -1) with Shape -> Gather -> Unsqueeze -> Concat -> Reshape and pads
    with ConstantOfShape -> Concat -> Pad: with static shapes these fold to constants before pruning."""
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    nodes = [
        oh.make_node("Conv", ["x", "w1"], ["c1"]),
        oh.make_node("Relu", ["c1"], ["r1"]),
        oh.make_node("ConstantOfShape", ["four"], ["zeros"], value=numpy_helper.from_array(np.array([0], np.int64))),
        oh.make_node("Concat", ["zeros", "hw"], ["pads"], axis=0),
        oh.make_node("Pad", ["r1", "pads"], ["p1"]),
        oh.make_node("Conv", ["p1", "w2"], ["c2"]),
        oh.make_node("GlobalAveragePool", ["c2"], ["g"]),
        oh.make_node("Shape", ["g"], ["s"]),
        oh.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        oh.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        oh.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        oh.make_node("Reshape", ["g", "shape"], ["flat"]),
        oh.make_node("Gemm", ["flat", "wf"], ["y"], transB=1),
    ]
    inits = [_w("w1", 8, 3, 1, 1), i64("four", [4]), i64("hw", [0, 0, 1, 1]), _w("w2", 8, 8, 3, 3), i64("zero", 0),
             i64("axes0", [0]), i64("minus1", [-1]), _w("wf", 5, 8)]
    proto = make_model(nodes, [_vi("x", [1, 3, 6, 6])], [_vi("y", [1, 5])], inits)
    path = _prepared(proto, tmp_path)
    outcome = transform.prune(str(path), tmp_path / "p.onnx", ratio=0.5)
    assert [g.kept for g in outcome.plan.groups if not g.frozen] == [4, 4]
    assert outcome.plan.barriers[0].op_type == "output" and len(outcome.plan.barriers) == 1
    onnx.checker.check_model(str(tmp_path / "p.onnx"), full_check=True)


def test_tensor_read_inside_a_subgraph_is_pinned():
    """An If branch reads the Conv output from the outer scope without listing it as an input."""
    then_graph = oh.make_graph([oh.make_node("Relu", ["c"], ["t"])], "then", [], [_vi("t", [1, 4, 4, 4])])
    else_graph = oh.make_graph([oh.make_node("Neg", ["c"], ["e"])], "else", [], [_vi("e", [1, 4, 4, 4])])
    proto = make_model(
        [oh.make_node("Conv", ["x", "w"], ["c"]), oh.make_node("If", ["flag"], ["y"], then_branch=then_graph, else_branch=else_graph)],
        [_vi("x", [1, 3, 4, 4]), oh.make_tensor_value_info("flag", TensorProto.BOOL, [])], [_vi("y", [1, 4, 4, 4])],
        [_w("w", 4, 3, 1, 1)],
    )
    plan = plan_pruning(build_dependency_graph(ir.serde.deserialize_model(proto)), ratio=0.5)
    assert plan.removed_channels == 0 and plan.groups[0].frozen.endswith(": read inside a subgraph")


def test_a_split_output_is_never_emptied():
    """At 0.99 every group keeps one channel; each Split output must still keep one of its own."""
    model = ir.serde.deserialize_model(concat_split_net())
    from edgecc.graph.io import infer_shapes

    infer_shapes(model)
    g = build_dependency_graph(model)
    plan = plan_pruning(g, ratio=0.99)
    pruned = materialise(plan)
    split = next(n for n in pruned.graph if n.op_type == "Split")
    assert all(o.shape[1] >= 1 for o in split.outputs)
    sl = next(n for n in pruned.graph if n.op_type == "Slice")
    assert sl.outputs[0].shape[1] >= 1


def _zero_where_read(model: ir.Model, plan) -> ir.Model:
    """A copy of ``model`` in which every channel the plan removes is zeroed where a layer reads it (the
    input slices of Conv, ConvTranspose, Gemm and MatMul weights); nothing else changes."""
    from edgecc.graph.prune.materialise import Editor
    from edgecc.graph.weights import InitializerWriter

    masked = model.clone()
    edit = Editor(plan)
    twins = dict(zip(model.graph, masked.graph))
    writer = InitializerWriter(masked.graph)
    for node, twin in twins.items():
        w = const_array(node.inputs[1]) if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") else None
        keep = edit.kept(node.inputs[0]) if w is not None else None
        if keep is None or (node.op_type == "Conv" and node.attributes.get_int("group", 1) != 1):
            continue
        axis = {"Conv": 1, "ConvTranspose": 0, "MatMul": 0, "Gemm": 1 if node.attributes.get_int("transB", 0) else 0}[node.op_type]
        dropped = np.setdiff1d(np.arange(w.shape[axis]), keep)
        w = w.copy()
        index = [slice(None)] * w.ndim
        index[axis] = dropped
        w[tuple(index)] = 0
        writer.replace_input(twin, 1, w, "_masked")
    return masked


@pytest.mark.parametrize("name,ratio", [("mobilenetv2", 0.5), ("bert-tiny", 0.5), ("resnet18", 0.3)])
def test_ratio_pruning_equals_zeroing_the_removed_channels_where_they_are_read(name, ratio):
    """Whatever the ratio, the smaller model computes exactly what the original does with the removed
    channels zeroed at every layer that reads them: the slicing is right, only the choice costs accuracy."""
    model = prepare_model(f"zoo:{name}").model
    plan = plan_pruning(build_dependency_graph(model), ratio=ratio)
    masked = _zero_where_read(model, plan)
    pruned = materialise(plan)
    eq = check_equivalent(masked, pruned, tolerance=EXACT_TOLERANCE)
    assert eq.ok, eq.describe()


def test_ratio_pruning_equals_zeroing_on_concat_split_slice_graph():
    from edgecc.graph.io import infer_shapes

    model = ir.serde.deserialize_model(concat_split_net("Sigmoid"))
    infer_shapes(model)
    plan = plan_pruning(build_dependency_graph(model), ratio=0.5)
    masked = _zero_where_read(model, plan)
    eq = check_equivalent(masked, materialise(plan), tolerance=EXACT_TOLERANCE)
    assert plan.removed_channels > 0 and eq.ok, eq.describe()


def test_shared_weights_stay_shared_when_the_same_channels_are_kept():
    """Two branches with the same weights (as exporters merge identical layer copies) are cut alike and
    share their cut weights again, so parameters really drop."""
    nodes = []
    for i in (1, 2):
        nodes += [oh.make_node("MatMul", ["x", "A"], [f"h{i}"], name=f"up{i}"), oh.make_node("Relu", [f"h{i}"], [f"r{i}"]),
                  oh.make_node("MatMul", [f"r{i}", "B"], [f"y{i}"], name=f"down{i}")]
    proto = make_model(nodes, [_vi("x", [1, 8])], [_vi("y1", [1, 8]), _vi("y2", [1, 8])], [_w("A", 8, 16), _w("B", 16, 8)])
    from edgecc.graph.io import infer_shapes

    model = ir.serde.deserialize_model(proto)
    infer_shapes(model)
    plan = plan_pruning(build_dependency_graph(model), ratio=0.5)
    pruned = materialise(plan)
    shapes = sorted(tuple(v.const_value.shape) for v in pruned.graph.initializers.values())
    assert shapes == [(8, 8), (8, 8)]
