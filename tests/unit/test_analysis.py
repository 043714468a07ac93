"""Model analysis: exact FLOPs on hand-built graphs, op counts, parameters, and the zoo's known totals."""

from __future__ import annotations

import functools
import json

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.graph.analysis import ModelAnalysis, analyze, node_flops
from edgecc.graph.io import TensorSpec, infer_shapes, prepare_model, to_proto

F = TensorProto.FLOAT


def make_model(nodes, inputs, outputs, initializers=(), opsets=(("", 17),)) -> ir.Model:
    """A model from helper parts, shape-inferred the way prepare_model does it."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    proto.ir_version = 8
    model = ir.from_proto(proto)
    infer_shapes(model)
    return model


def single_node(op: str, input_shapes: dict[str, list], initializers: dict[str, np.ndarray] | None = None,
                **attrs) -> ModelAnalysis:
    """One node `op` fed by float graph inputs (and initializers), output `y`, analysed."""
    initializers = initializers or {}
    names = [*input_shapes, *initializers]
    node = helper.make_node(op, names, ["y"], name="n", **attrs)
    return analyze(make_model(
        [node],
        [helper.make_tensor_value_info(n, F, s) for n, s in input_shapes.items()],
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(a, n) for n, a in initializers.items()],
    ))


def ones(*shape: int) -> np.ndarray:
    return np.ones(shape, np.float32)


# -- exact FLOPs of single ops -----------------------------------------------------------------


def test_conv_flops_with_and_without_bias():
    # Conv 3->8, 3x3, pad 1 on 1x3x8x8: 8*8*8 outputs, each 3*9 multiply-adds; the bias adds 1 per output.
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    with_bias = single_node("Conv", {"x": [1, 3, 8, 8]}, {"w": ones(8, 3, 3, 3), "b": ones(8)}, **conv)
    without = single_node("Conv", {"x": [1, 3, 8, 8]}, {"w": ones(8, 3, 3, 3)}, **conv)
    assert with_bias.flops == 2 * 8 * 8 * 8 * 3 * 9 + 8 * 8 * 8 == 28_160
    assert without.flops == 2 * 8 * 8 * 8 * 3 * 9 == 27_648


def test_depthwise_conv_flops():
    # group 8 on 8 channels, stride 2: 1x8x4x4 outputs, each 1 input channel * 9 taps.
    a = single_node("Conv", {"x": [1, 8, 8, 8]}, {"w": ones(8, 1, 3, 3)},
                    group=8, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    assert a.flops == 2 * (8 * 4 * 4) * 1 * 9 == 2_304


def test_grouped_conv_flops():
    # 8 -> 16 channels in 4 groups: each output sees 2 input channels.
    a = single_node("Conv", {"x": [1, 8, 6, 6]}, {"w": ones(16, 2, 3, 3)}, group=4, kernel_shape=[3, 3])
    assert a.flops == 2 * (16 * 4 * 4) * 2 * 9 == 9_216


def test_conv_transpose_flops():
    # Each of the 4*5*5 input elements meets 2 output channels * 9 taps; output 1x2x7x7.
    a = single_node("ConvTranspose", {"x": [1, 4, 5, 5]}, {"w": ones(4, 2, 3, 3)}, kernel_shape=[3, 3])
    assert a.flops == 2 * (4 * 5 * 5) * 2 * 9 == 3_600


def test_gemm_flops():
    # [4,16] x [32,16]^T + C[32]: M=4, N=32, K=16.
    a = single_node("Gemm", {"a": [4, 16]}, {"b": ones(32, 16), "c": ones(32)}, transB=1)
    assert a.flops == 2 * 4 * 32 * 16 + 4 * 32 == 4_224
    # transA, no C: A is [K, M] = [16, 4].
    a = single_node("Gemm", {"a": [16, 4]}, {"b": ones(16, 32)}, transA=1)
    assert a.flops == 2 * 4 * 32 * 16 == 4_096


def test_batched_matmul_flops_with_broadcasting():
    # [2,1,5,6] x [3,6,7] broadcasts to [2,3,5,7], each output a 6-long dot product.
    a = single_node("MatMul", {"a": [2, 1, 5, 6], "b": [3, 6, 7]})
    assert a.flops == 2 * (2 * 3 * 5 * 7) * 6 == 2_520
    # A 1-D left operand is a row vector: [6] x [2,6,7] -> [2,7].
    a = single_node("MatMul", {"a": [6], "b": [2, 6, 7]})
    assert a.flops == 2 * (2 * 7) * 6 == 168


@pytest.mark.parametrize(
    ("equation", "shapes", "flops"),
    [
        ("bij,bjk->bik", {"a": [2, 3, 4], "b": [2, 4, 5]}, 2 * 2 * 3 * 4 * 5),  # same as the batched MatMul
        ("ij,jk", {"a": [3, 4], "b": [4, 5]}, 2 * 3 * 4 * 5),  # implicit output "ik"
        ("...ij,...jk->...ik", {"a": [2, 3, 4], "b": [4, 5]}, 2 * 2 * 3 * 4 * 5),
        ("ij,ij->ij", {"a": [3, 4], "b": [3, 4]}, 3 * 4),  # element-wise product, nothing summed
        ("ij->i", {"a": [3, 4]}, 3 * 4),  # a reduction reads every input element
        ("ij->ji", {"a": [3, 4]}, 0),  # a transpose
    ],
)
def test_einsum_flops(equation, shapes, flops):
    assert single_node("Einsum", shapes, equation=equation).flops == flops


@pytest.mark.parametrize(
    ("op", "shapes", "attrs", "initializers", "flops"),
    [
        ("Relu", {"x": [2, 10]}, {}, {}, 20),
        ("Add", {"x": [2, 10], "z": [10]}, {}, {}, 20),  # per output element, after broadcasting
        ("Sum", {"x": [2, 10], "z": [2, 10], "w": [2, 10]}, {}, {}, 2 * 20),  # 3 inputs: 2 adds
        ("BatchNormalization", {"x": [1, 8, 8, 8]}, {},
         {"s": ones(8), "b": ones(8), "m": ones(8), "v": ones(8)}, 2 * 512),
        ("MaxPool", {"x": [1, 8, 8, 8]}, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]), {},
         (8 * 4 * 4) * 9),
        ("AveragePool", {"x": [1, 8, 8, 8]}, dict(kernel_shape=[2, 2], strides=[2, 2]), {}, (8 * 4 * 4) * 4),
        ("GlobalAveragePool", {"x": [1, 8, 8, 8]}, {}, {}, 512),
        ("ReduceMean", {"x": [2, 10]}, dict(axes=[-1]), {}, 20),
        ("Softmax", {"x": [2, 10]}, {}, {}, 5 * 20),
        ("LayerNormalization", {"x": [2, 10]}, {}, {"g": ones(10)}, 8 * 20),
        ("Transpose", {"x": [2, 10]}, {}, {}, 0),
        ("Reshape", {"x": [2, 10]}, {}, {"shape": np.array([20], np.int64)}, 0),
    ],
)
def test_per_op_rules(op, shapes, attrs, initializers, flops):
    a = single_node(op, shapes, initializers, **attrs)
    assert (a.flops, a.flops_unknown, a.flops_no_rule) == (flops, [], {})


# -- counts, parameters, subgraphs, unknowns -----------------------------------------------------


def small_cnn() -> ir.Model:
    """Conv(+bias) -> Relu -> Add(Constant) -> Relu -> com.microsoft::FusedConv -> Reshape by an int64 shape."""
    const = helper.make_node("Constant", [], ["k"], name="k",
                             value=numpy_helper.from_array(np.full((1, 8, 1, 1), 0.5, np.float32)))
    nodes = [
        const,
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r1"], name="relu1"),
        helper.make_node("Add", ["r1", "k"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r2"], name="relu2"),
        helper.make_node("FusedConv", ["r2", "w2"], ["f"], name="fused", domain="com.microsoft",
                         kernel_shape=[1, 1], activation="Relu"),
        helper.make_node("Reshape", ["f", "shape"], ["y"], name="flatten"),
    ]
    initializers = [
        numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w"),
        numpy_helper.from_array(np.zeros(8, np.float32), "b"),
        numpy_helper.from_array(np.zeros((4, 8, 1, 1), np.float32), "w2"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
    ]
    return make_model(
        nodes, [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])], [helper.make_tensor_value_info("y", F, None)],
        initializers, opsets=(("", 17), ("com.microsoft", 1)),
    )


def test_counts_histogram_and_params():
    a = analyze(small_cnn())
    assert a.nodes == 7
    assert list(a.op_histogram.items()) == [  # by count, then name
        ("Relu", 2), ("Add", 1), ("Constant", 1), ("Conv", 1), ("Reshape", 1), ("com.microsoft::FusedConv", 1),
    ]
    assert a.opsets == {"ai.onnx": 17, "com.microsoft": 1}
    assert a.ir_version == 8
    # float initializers 216 + 8 + 32, plus the Constant's 8 floats; the int64 shape is not a parameter.
    assert a.params == 216 + 8 + 32 + 8 == 264
    assert a.param_bytes == (216 + 8 + 32) * 4 + 2 * 8 == 1_040
    # Conv 28160, two Relus and the Add on 512 elements; the custom op has no rule and is reported.
    assert a.flops == 28_160 + 3 * 512
    assert a.flops_no_rule == {"com.microsoft::FusedConv": 1}
    assert a.flops_unknown == []
    # Largest activation: 1x8x8x8 float32 = 2048 bytes.
    assert a.largest_activation_bytes == 2_048
    assert a.memory_estimate_bytes == 1_040 + 2 * 2_048
    assert a.inputs == [TensorSpec("x", "float32", (1, 3, 8, 8))]


def test_node_flops_per_node():
    by_name = {node.name: node_flops(node) for node in small_cnn().graph}
    assert by_name == {"k": 0, "conv": 28_160, "relu1": 512, "add": 512, "relu2": 512, "fused": None, "flatten": 0}


def test_subgraph_nodes_are_counted():
    then_branch = helper.make_graph([helper.make_node("Relu", ["x"], ["t"], name="then_relu")], "then", [],
                                    [helper.make_tensor_value_info("t", F, [2, 3])])
    else_branch = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["n"], name="neg"), helper.make_node("Abs", ["n"], ["e"], name="abs")],
        "else", [], [helper.make_tensor_value_info("e", F, [2, 3])])
    model = make_model(
        [helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then_branch, else_branch=else_branch)],
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("y", F, [2, 3])],
    )
    a = analyze(model)
    assert a.nodes == 4
    assert a.op_histogram == {"Abs": 1, "If": 1, "Neg": 1, "Relu": 1}
    assert a.flops == 3 * 6  # both branches once each; If itself is 0


def test_unknown_shapes_are_named_not_fatal():
    # The batch dimension N is left symbolic: the MatMul and Relu after it cannot be counted.
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
            helper.make_node("Relu", ["m"], ["y"], name="relu"),
            helper.make_node("Relu", ["z"], ["y2"], name="static_relu"),
        ],
        [helper.make_tensor_value_info("x", F, ["N", 4]), helper.make_tensor_value_info("z", F, [5])],
        [helper.make_tensor_value_info("y", F, None), helper.make_tensor_value_info("y2", F, None)],
        [numpy_helper.from_array(ones(4, 3), "w")],
    )
    a = analyze(model)
    assert a.flops_unknown == ["mm", "relu"]
    assert a.flops == 5
    assert a.inputs[0] == TensorSpec("x", "float32", (-1, 4))


def test_model_without_inferred_shapes_does_not_crash():
    proto = onnx.load_from_string(to_proto(small_cnn()).SerializeToString())
    del proto.graph.value_info[:]
    a = analyze(ir.from_proto(proto))  # no shape inference: only graph inputs and initializers have shapes
    assert a.nodes == 7
    assert a.flops_unknown == ["conv", "relu1", "add", "relu2"]
    assert a.flops == 0


def test_to_json_is_plain():
    a = analyze(small_cnn())
    data = json.loads(json.dumps(a.to_json()))
    assert data["flops"] == a.flops
    assert data["op_histogram"]["com.microsoft::FusedConv"] == 1
    assert data["inputs"] == [{"name": "x", "dtype": "float32", "shape": [1, 3, 8, 8]}]
    assert data["flops_no_rule"] == {"com.microsoft::FusedConv": 1}


# -- the zoo ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def zoo_analysis(name: str) -> ModelAnalysis:
    return analyze(prepare_model(f"zoo:{name}").model)


@pytest.mark.parametrize(
    ("name", "gflops", "tolerance"),
    [
        ("resnet18", 3.64, 0.02),  # torchvision: 1.82 GMACs
        ("resnet50", 8.2, 0.02),  # torchvision: 4.1 GMACs
        ("mobilenetv2", 0.6, 0.05),  # torchvision: 0.3 GMACs; BN and ReLU6 weigh more in a small model
    ],
)
def test_zoo_cnn_flops_match_published(name, gflops, tolerance):
    a = zoo_analysis(name)
    assert a.flops_unknown == [] and a.flops_no_rule == {}
    assert a.flops == pytest.approx(gflops * 1e9, rel=tolerance)


def test_resnet18_params_and_memory():
    a = zoo_analysis("resnet18")
    # torchvision's 11,689,512 parameters plus BN running mean and var (buffers in torch) on 4800 channels.
    assert a.params == 11_689_512 + 2 * 4_800
    assert a.param_bytes == 4 * a.params
    assert a.largest_activation_bytes == 64 * 112 * 112 * 4  # conv1's output
    assert a.memory_estimate_bytes == a.param_bytes + 2 * a.largest_activation_bytes
    assert (a.nodes, a.op_histogram["Conv"], a.op_histogram["BatchNormalization"]) == (69, 20, 20)
    assert a.inputs == [TensorSpec("input", "float32", (1, 3, 224, 224))]
    assert a.outputs == [TensorSpec("logits", "float32", (1, 1000))]


def test_bert_tiny_prepared():
    a = zoo_analysis("bert-tiny")
    # Per layer: query, key, value, scores, context, attention output, intermediate, output.
    assert a.op_histogram["MatMul"] == 2 * 8
    assert a.op_histogram["Gemm"] == 1  # the pooler
    assert a.flops > 0
    assert a.params == 4_385_920 + 7  # HF BertModel's parameters plus the graph's 7 float scalar constants


# bert-tiny at batch 1, sequence 128 (hidden 128, 2 heads of 64, intermediate 512, 2 layers):
# 2 FLOPs per MAC x 2 layers x (6 Linear layers on 128 tokens + scores and context for 2 heads).
ENCODER_MATMUL_FLOPS = 2 * 2 * (128 * (4 * 128 * 128 + 2 * 128 * 512) + 2 * 2 * 128 * 128 * 64)
POOLER_FLOPS = 2 * 128 * 128 + 128
LAYERNORM_FLOPS = 7 * 128 * 128 + 2 * 128  # decomposed: 2 ReduceMean, Sub, Pow, Div, Mul, Add + eps Add, Sqrt
LAYER_OTHER_FLOPS = (
    3 * 128 * 128  # q, k, v bias Adds
    + 2 * 2 * 128 * 128  # score scaling Div and mask Add on [1, 2, 128, 128]
    + 5 * 2 * 128 * 128  # Softmax
    + 4 * 128 * 128  # attention-output and output bias Adds, two residual Adds
    + 6 * 128 * 512  # intermediate bias Add and GELU's Div, Erf, Add, Mul, Mul
)
BERT_TINY_FLOPS = (
    ENCODER_MATMUL_FLOPS + POOLER_FLOPS
    + 2 * 128 * 128  # embedding Adds
    + 5 * LAYERNORM_FLOPS
    + 2 * 128  # attention mask: Sub, Mul on [1, 1, 1, 128]
    + 2 * LAYER_OTHER_FLOPS
    + 128  # pooler Tanh
)


def test_bert_tiny_flops_with_shapes_observed_in_onnxruntime():
    """Exact FLOPs once every shape is known: shapes taken from a real onnxruntime run of the model."""
    model = prepare_model("zoo:bert-tiny").model
    shapes = observed_shapes(model, {n: np.ones((1, 128), np.int64) for n in ("input_ids", "attention_mask",
                                                                               "token_type_ids")})
    for node in model.graph:
        for value in node.outputs:
            value.shape = ir.Shape(shapes[value.name])
    a = analyze(model)
    assert a.flops_unknown == []
    assert BERT_TINY_FLOPS == 119_555_840
    assert a.flops == BERT_TINY_FLOPS


def observed_shapes(model: ir.Model, feeds: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """The shape of every node output in one onnxruntime run of `model`."""
    proto = to_proto(model)
    declared = {o.name for o in proto.graph.output}
    names = [o for node in proto.graph.node for o in node.output]
    proto.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in declared)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    return {o.name: r.shape for o, r in zip(session.get_outputs(), outputs)}
