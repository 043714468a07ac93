"""Every fusion rule: it fires where it exists for (count, node delta), the result matches the original in
onnxruntime (edgecc.graph.equivalence, REWRITE_TOLERANCE), onnx.checker accepts it, and a negative case
where it must not fire."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import pytest
from onnx import TensorProto, numpy_helper
from onnx_ir.passes import common as common_passes

from edgecc.graph.equivalence import check_equivalent
from edgecc.graph.io import infer_shapes
from edgecc.graph.passes.fusion import FusionPass
from edgecc.graph.rewrite import common, onnxruntime as ort_pack

from conftest import make_model

F = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def _w(name, *shape, scale=0.5):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def _c(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _vi(name, shape):
    return oh.make_tensor_value_info(name, F, shape)


def _to_ir(proto: onnx.ModelProto) -> ir.Model:
    model = ir.serde.deserialize_model(proto)
    infer_shapes(model)
    return model


def apply_rules(proto: onnx.ModelProto, rules) -> tuple[ir.Model, ir.Model, FusionPass]:
    """(original, rewritten, the pass) with identity and unused-node cleanup after the rules."""
    original = _to_ir(proto)
    model = _to_ir(proto)
    fusion = FusionPass(rules, explain=True)
    fusion(model)
    common_passes.IdentityEliminationPass()(model)
    common_passes.RemoveUnusedNodesPass()(model)
    infer_shapes(model)
    return original, model, fusion


# -- the cases ------------------------------------------------------------------------------------

def conv_bn():
    return make_model(
        [oh.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         oh.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"])],
        [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 4, 8, 8])],
        [_w("w", 4, 3, 3, 3), _c("g", [0.5, 1.0, 1.5, 2.0]), _c("b", [0.1, -0.1, 0.2, 0.0]),
         _c("m", [0.0, 0.1, -0.1, 0.2]), _c("v", [1.0, 0.5, 2.0, 1.5])],
    )


def conv_bn_shared_weight():
    """The Conv weight is also used by a second Conv: folding BN into it would change that Conv."""
    m = conv_bn()
    m.graph.node.append(oh.make_node("Conv", ["x", "w"], ["z"], pads=[1, 1, 1, 1]))
    m.graph.output.append(_vi("z", [1, 4, 8, 8]))
    return m


def conv_then(op_type: str, const_shape):
    return make_model(
        [oh.make_node("Conv", ["x", "w", "bias"], ["c"]), oh.make_node(op_type, ["c", "k"], ["y"])],
        [_vi("x", [1, 3, 6, 6])], [_vi("y", [1, 4, 6, 6])],
        [_w("w", 4, 3, 1, 1), _w("bias", 4), _w("k", *const_shape)],
    )


def matmul_add(rank: int):
    shape = [4, 8] if rank == 2 else [2, 4, 8]
    return make_model(
        [oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Add", ["h", "b"], ["y"])],
        [_vi("x", shape)], [_vi("y", shape[:-1] + [3])], [_w("w", 8, 3), _w("b", 3)],
    )


def pad_conv(mode: str):
    return make_model(
        [oh.make_node("Pad", ["x", "pads"], ["p"], mode=mode), oh.make_node("Conv", ["p", "w"], ["y"])],
        [_vi("x", [1, 3, 6, 6])], [_vi("y", [1, 4, 6, 6])],
        [_c("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64), _w("w", 4, 3, 3, 3)],
    )


def reshape_reshape():
    return make_model(
        [oh.make_node("Reshape", ["x", "s1"], ["a"]), oh.make_node("Reshape", ["a", "s2"], ["y"])],
        [_vi("x", [2, 3, 4])], [_vi("y", [6, 4])],
        [_c("s1", [2, 12], np.int64), _c("s2", [6, 4], np.int64)],
    )


def transpose_pair(adjacent: bool):
    """Transpose then its inverse; not adjacent: a Relu between them, so no chain to collapse."""
    if adjacent:
        nodes = [oh.make_node("Transpose", ["x"], ["a"], perm=[0, 2, 1]), oh.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 1]),
                 oh.make_node("Relu", ["t"], ["y"])]
    else:
        nodes = [oh.make_node("Transpose", ["x"], ["a"], perm=[0, 2, 1]), oh.make_node("Relu", ["a"], ["t"]),
                 oh.make_node("Transpose", ["t"], ["y"], perm=[0, 2, 1])]
    return make_model(nodes, [_vi("x", [2, 3, 4])], [_vi("y", [2, 3, 4])])


def concat(n: int):
    ins = ["x", "x2"][:n]
    return make_model(
        [oh.make_node("Concat", ins, ["c"], axis=1), oh.make_node("Relu", ["c"], ["y"])],
        [_vi(i, [1, 3]) for i in ins], [_vi("y", [1, 3 * n])],
    )


def slice_case(end: int):
    return make_model(
        [oh.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["s"]), oh.make_node("Relu", ["s"], ["y"])],
        [_vi("x", [2, 4])], [_vi("y", [2, min(end, 4)])],
        [_c("st", [0], np.int64), _c("en", [end], np.int64), _c("ax", [1], np.int64), _c("sp", [1], np.int64)],
    )


def layer_norm(opset: int = 17, axis: int = -1):
    return make_model(
        [oh.make_node("ReduceMean", ["x"], ["mean"], axes=[axis], keepdims=1),
         oh.make_node("Sub", ["x", "mean"], ["d"]),
         oh.make_node("Pow", ["d", "two"], ["d2"]),
         oh.make_node("ReduceMean", ["d2"], ["var"], axes=[axis], keepdims=1),
         oh.make_node("Add", ["var", "eps"], ["ve"]),
         oh.make_node("Sqrt", ["ve"], ["std"]),
         oh.make_node("Div", ["d", "std"], ["n"]),
         oh.make_node("Mul", ["n", "gamma"], ["s"]),
         oh.make_node("Add", ["s", "beta"], ["y"])],
        [_vi("x", [2, 5, 8])], [_vi("y", [2, 5, 8])],
        [_c("two", 2.0), _c("eps", 1e-5), _w("gamma", 8), _w("beta", 8)], opset=opset,
    )


def gelu(opset: int):
    return make_model(
        [oh.make_node("Div", ["x", "s2"], ["a"]), oh.make_node("Erf", ["a"], ["e"]),
         oh.make_node("Add", ["e", "one"], ["e1"]), oh.make_node("Mul", ["x", "e1"], ["m"]),
         oh.make_node("Mul", ["m", "half"], ["y"])],
        [_vi("x", [2, 16])], [_vi("y", [2, 16])],
        [_c("s2", math.sqrt(2.0)), _c("one", 1.0), _c("half", 0.5)], opset=opset,
        ir_version=9 if opset >= 20 else 8,
    )


def hardswish(same_input: bool):
    other = "x" if same_input else "z"
    inputs = [_vi("x", [1, 8])] + ([] if same_input else [_vi("z", [1, 8])])
    return make_model(
        [oh.make_node("HardSigmoid", ["x"], ["h"], alpha=1.0 / 6, beta=0.5), oh.make_node("Mul", [other, "h"], ["y"])],
        inputs, [_vi("y", [1, 8])],
    )


def transpose_unit(perm):
    """[2,1,3] transposed by ``perm``: (1,0,2) only moves the unit axis; (2,1,0) reorders data."""
    return make_model(
        [oh.make_node("Transpose", ["x"], ["t"], perm=list(perm)), oh.make_node("Reshape", ["t", "s"], ["y"])],
        [_vi("x", [2, 1, 3])], [_vi("y", [6])], [_c("s", [6], np.int64)],
    )


def add_const(value: float):
    return make_model(
        [oh.make_node("Add", ["x", "k"], ["a"]), oh.make_node("Relu", ["a"], ["y"])],
        [_vi("x", [2, 4])], [_vi("y", [2, 4])], [_c("k", value)],
    )


@dataclass(frozen=True)
class Case:
    id: str
    rules: list
    build: Callable[[], onnx.ModelProto]
    rule: str  # the rule name that must fire
    count: int
    node_delta: int
    negative: Callable[[], onnx.ModelProto]


CASES = [
    Case("conv_batchnorm", common.conv_batchnorm.rules, conv_bn, "FuseBatchNormIntoConv", 1, -1, conv_bn_shared_weight),
    Case("conv_mul", common.conv_scale_bias.rules, lambda: conv_then("Mul", (1, 4, 1, 1)), "ConvMulFusion", 1, -1,
         lambda: conv_then("Mul", (1, 1, 6, 6))),
    Case("conv_add", common.conv_scale_bias.rules, lambda: conv_then("Add", (4, 1, 1)), "ConvAddFusion", 1, -1,
         lambda: conv_then("Add", (1, 1, 1, 6))),
    Case("matmul_add_gemm", common.matmul_add_gemm.rules, lambda: matmul_add(2), "MatMulAddToGemm", 1, -1,
         lambda: matmul_add(3)),
    Case("pad_conv", common.pad_conv.rules, lambda: pad_conv("constant"), "FuseConvPad", 1, -1, lambda: pad_conv("reflect")),
    Case("reshape_chain", common.shape_chains.rules, reshape_reshape, "ReshapeReshape", 1, -1, lambda: transpose_pair(False)),
    Case("transpose_chain", common.shape_chains.rules, lambda: transpose_pair(True), "TransposeTranspose", 1, -2,
         lambda: transpose_pair(False)),
    Case("transpose_as_reshape", common.transpose_as_reshape.rules + common.shape_chains.rules,
         lambda: transpose_unit((1, 0, 2)), "TransposeOfUnitAxes", 1, -1, lambda: transpose_unit((2, 1, 0))),
    Case("concat_of_one", common.concat_single.rules, lambda: concat(1), "ConcatOfOne", 1, -1, lambda: concat(2)),
    Case("slice_noop", common.slice_noop.rules, lambda: slice_case(2**31 - 1), "SliceWholeAxis", 1, -1, lambda: slice_case(2)),
    Case("layer_norm", common.layer_norm.rules, layer_norm, "LayerNormFusion", 1, -8, lambda: layer_norm(opset=16)),
    Case("gelu", common.gelu.rules, lambda: gelu(20), "GeluFusion_xh", 1, -4, lambda: gelu(17)),
    Case("hardswish", common.hardswish.rules, lambda: hardswish(True), "HardSwishFusionFromHardSigmoid", 1, -1,
         lambda: hardswish(False)),
    Case("no_op", common.no_op.rules, lambda: add_const(0.0), "AddZero", 1, -1, lambda: add_const(1e-12)),
    Case("ort_gelu_contrib", ort_pack.gelu_contrib.rules, lambda: gelu(17), "GeluContribFusion_xh", 1, -4, lambda: gelu(20)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_fires_matches_and_checks(case: Case):
    proto = case.build()
    original, model, fusion = apply_rules(proto, case.rules)
    assert fusion.counts.get(case.rule) == case.count, fusion.counts
    before = len(list(original.graph.all_nodes()))
    after = len(list(model.graph.all_nodes()))
    assert after - before == case.node_delta
    eq = check_equivalent(original, model)
    assert eq.ok, eq.describe()
    onnx.checker.check_model(ir.serde.serialize_model(model), full_check=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_does_not_fire_on_negative_case(case: Case):
    original, model, fusion = apply_rules(case.negative(), case.rules)
    assert fusion.counts == {}
    assert [n.op_type for n in model.graph] == [n.op_type for n in original.graph]


def test_declined_rules_say_why():
    _, _, fusion = apply_rules(gelu(17), common.gelu.rules)
    reasons = [d.reason for d in fusion.declined.values()]
    assert any("opset 17 < 20" in r for r in reasons), reasons
    _, _, fusion = apply_rules(conv_bn_shared_weight(), common.conv_batchnorm.rules)
    assert any("used by another node" in d.reason for d in fusion.declined.values())


def test_add_of_tiny_epsilon_is_kept():
    """onnxscript's own no-op rule treats Add(x, 1e-12) as x + 0; ours must not."""
    _, model, _ = apply_rules(layer_norm(), common.no_op.rules)
    assert [n.op_type for n in model.graph].count("Add") == 2


def test_matmul_add_with_a_rank_3_bias_is_not_a_gemm():
    """Add(MatMul(a[4,8], w[8,3]), c[1,1,3]) is [1,4,3]: a Gemm would drop the leading axis."""
    proto = make_model(
        [oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Add", ["h", "b"], ["y"])],
        [_vi("x", [4, 8])], [_vi("y", [1, 4, 3])], [_w("w", 8, 3), _w("b", 1, 1, 3)],
    )
    _, model, fusion = apply_rules(proto, common.matmul_add_gemm.rules)
    assert fusion.counts == {} and [n.op_type for n in model.graph] == ["MatMul", "Add"]


def test_hardswish_needs_opset_14():
    proto = hardswish(True)
    proto.opset_import[0].version = 13
    _, _, fusion = apply_rules(proto, common.hardswish.rules)
    assert fusion.counts == {}
    assert any("opset 13 < 14" in d.reason for d in fusion.declined.values())
