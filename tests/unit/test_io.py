from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest
from onnx import TensorProto

from conftest import make_model
from edgecc.errors import BadInputError, ModelError, UnknownNameError
from edgecc.graph.io import parse_input_shapes, prepare_model, save_model


def test_parse_input_shapes():
    assert parse_input_shapes(["x:1,3,224,224", "ids:2,7"]) == {"x": (1, 3, 224, 224), "ids": (2, 7)}
    assert parse_input_shapes(["a:1,2;b:3"]) == {"a": (1, 2), "b": (3,)}
    assert parse_input_shapes(["name:with:colons:4"]) == {"name:with:colons": (4,)}


@pytest.mark.parametrize("spec, message", [
    ("x", "malformed --input-shape 'x'"), ("x:1,a", "malformed"), ("x:", "malformed"),
    ("x:1,0", "positive integer"), ("x:1,-2", "malformed"),
])
def test_parse_input_shapes_rejects(spec, message):
    with pytest.raises(BadInputError, match=message):
        parse_input_shapes([spec])


def test_dynamic_input_needs_a_shape(dynamic_mlp_path):
    with pytest.raises(ModelError, match=r"dynamic input shapes need values: x \[N,8\].*--input-shape x:"):
        prepare_model(dynamic_mlp_path)


def test_fixing_the_shape_infers_the_rest(dynamic_mlp_path):
    m = prepare_model(dynamic_mlp_path, {"x": (3, 8)})
    assert [(s.name, s.shape, s.dtype) for s in m.inputs] == [("x", (3, 8), "float32")]
    assert [(s.name, s.shape) for s in m.outputs] == [("y", (3, 4))]
    assert m.model.ir_version <= 10 and len(m.sha256) == 64


@pytest.mark.parametrize("shapes, message", [
    ({"x": (3, 9)}, "dimension 1 is 9, but the model fixes it to 8"),
    ({"x": (3,)}, "rank 1 given, the model declares rank 2"),
    ({"x": (1, 8), "z": (1,)}, "names 'z', which the model does not have; inputs: x"),
])
def test_contradicting_shapes(dynamic_mlp_path, shapes, message):
    with pytest.raises(BadInputError, match=message):
        prepare_model(dynamic_mlp_path, shapes)


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(1).bytes(4096))
    whole = prepare_model("zoo:tinycnn")
    good = save_model(whole.model, tmp_path / "good.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = {
        tmp_path / "missing.onnx": "no such file",
        tmp_path: "is a directory",
        empty: "file is empty",
        noise: "not a valid ONNX model",
        truncated: "not a valid ONNX model",
    }
    for path, message in cases.items():
        with pytest.raises(ModelError, match=message) as info:
            prepare_model(path)
        assert str(path) in str(info.value)


def test_invalid_graph_is_rejected(tmp_path):
    # 'w' is used but never defined: the checker must say so.
    model = make_model(
        [oh.make_node("MatMul", ["x", "w"], ["y"])],
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=r"invalid ONNX model: .*w"):
        prepare_model(path)


def test_ir_version_14_is_lowered_for_onnxruntime(tmp_path):
    model = make_model(
        [oh.make_node("Relu", ["x"], ["y"])],
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])], ir_version=14,
    )
    path = tmp_path / "ir14.onnx"
    onnx.save(model, str(path))
    with pytest.raises(Exception, match="(?i)ir_version|Unsupported model IR version"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    prepared = prepare_model(path)
    out = save_model(prepared.model, tmp_path / "fixed.onnx")
    assert onnx.load(str(out)).ir_version <= 10
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.array([[-1, 2], [3, -4]], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], np.maximum(x, 0))


def test_external_data_missing_and_short(tmp_path):
    w = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    model = make_model(
        [oh.make_node("MatMul", ["x", "w"], ["y"])],
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.data", size_threshold=0)
    m = prepare_model(path)
    assert m.outputs[0].shape == (1, 64)
    data = tmp_path / "ext.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(ModelError, match="external data file 'ext.data' is too short for initializer 'w'"):
        prepare_model(path)
    data.unlink()
    with pytest.raises(ModelError, match="refers to external data file 'ext.data', which is missing"):
        prepare_model(path)


def test_zero_sized_dimension(tmp_path):
    model = make_model(
        [oh.make_node("Relu", ["x"], ["y"])],
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [0, 4])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [0, 4])],
    )
    path = tmp_path / "zero.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="zero-sized dimension"):
        prepare_model(path)


def test_zoo_defaults_and_override():
    bert = prepare_model("zoo:bert-tiny")
    assert {s.name: s.shape for s in bert.inputs} == {
        "input_ids": (1, 128), "attention_mask": (1, 128), "token_type_ids": (1, 128)
    }
    bert = prepare_model("zoo:bert-tiny", {"input_ids": (2, 16), "attention_mask": (2, 16), "token_type_ids": (2, 16)})
    assert {s.name: s.shape for s in bert.outputs} == {"last_hidden_state": (2, 16, 128), "pooler_output": (2, 128)}
    with pytest.raises(UnknownNameError, match="did you mean resnet50"):
        prepare_model("zoo:resnet5")


def test_input_shapes_arg_takes_dicts_flags_and_none():
    from edgecc.graph.io import input_shapes_arg

    assert input_shapes_arg(None) == {}
    assert input_shapes_arg({"x": (1, 3)}) == {"x": (1, 3)}
    assert input_shapes_arg(["x:1,3,224,224", "ids:2,7"]) == {"x": (1, 3, 224, 224), "ids": (2, 7)}
    with pytest.raises(BadInputError, match="positive integer"):
        input_shapes_arg(["x:0,3"])
