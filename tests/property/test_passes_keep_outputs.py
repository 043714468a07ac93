"""Every graph pass and pipeline keeps a valid model's outputs (names, shapes, values) and validity."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings

from edgecc.graph.io import prepare_model, save_model, to_proto
from graphs import random_models


def _run(model: onnx.ModelProto, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return {o.name: v for o, v in zip(sess.get_outputs(), sess.run(None, feeds))}


def _prepare(path):
    return to_proto(prepare_model(path).model)


def _optimize(path):
    from edgecc.graph.passes import optimize_model

    return to_proto(optimize_model(prepare_model(path).model).model)


def _optimize_openvino_pack(path):
    from edgecc.graph.passes import optimize_model

    return to_proto(optimize_model(prepare_model(path).model, backend="openvino").model)


# Each entry turns a saved model into a rewritten ModelProto. Graph passes join this table.
PIPELINES = {
    "prepare (validate, static shapes, shape inference)": _prepare,
    "optimize (cleanup, folding, onnxsim, fusion)": _optimize,
    "optimize with the openvino pack": _optimize_openvino_pack,
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(model=random_models())
def test_pipelines_keep_outputs(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("m") / "m.onnx"
    onnx.save(model, str(path))
    feeds = {"x": np.random.default_rng(0).standard_normal([d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]).astype(np.float32)}
    expected = _run(model, feeds)
    for name, pipeline in PIPELINES.items():
        rewritten = pipeline(path)
        onnx.checker.check_model(rewritten, full_check=True)
        got = _run(rewritten, feeds)
        assert list(got) == list(expected), name
        for k in expected:
            assert got[k].shape == expected[k].shape and got[k].dtype == expected[k].dtype, (name, k)
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-4, atol=1e-5, err_msg=name)
