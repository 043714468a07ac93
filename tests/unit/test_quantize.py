"""INT8 QDQ quantisation (onnxruntime): valid models, the requested types and granularity, compile/compare
integration with accuracy columns, and clear errors for bad calibration data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgecc import api
from edgecc.cli import app
from edgecc.errors import BadInputError, UnsupportedError
from edgecc.graph.io import prepare_model
from edgecc.graph.quantize import RandomCalibrationWarning, quantize_prepared
from edgecc.report.schema import ResultRow

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
MNIST = REPO / "benchmarks" / "data"
FAST = api.ProfileSettings(warmup=1, runs=3, min_time_s=0.0, layer_runs=0)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Six seeded noise-and-gradient photos, 40x30 RGB, as PNG and JPEG."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        base = np.linspace(0, 255, 40)[None, :, None] * np.array([1.0, 0.5, 0.2]) * (i + 1) / 6
        arr = np.clip(base + rng.normal(0, 40, (30, 40, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(d / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return d


@pytest.fixture(scope="module")
def tinycnn():
    return prepare_model("zoo:tinycnn")


def _run(path, feeds):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


def _weight_dequantizers(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    inits = {i.name: i for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
            and inits[n.input[0]].data_type == onnx.TensorProto.INT8 and len(inits[n.input[0]].dims) == 4]


def test_qdq_model_is_valid_u8s8_per_channel_and_close_to_fp32(tmp_path, tinycnn, images):
    result = quantize_prepared(tinycnn, str(images), {"samples": 4})
    path = tmp_path / "q.onnx"
    import onnx_ir as ir

    ir.save(result.model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert result.samples == 4 and "calibrated on 4 samples" in result.notes[0]
    convs = [n for n in tinycnn.model.graph.all_nodes() if n.op_type == "Conv"]
    wdq = _weight_dequantizers(proto)
    assert len(wdq) == len(convs)  # every conv weight is S8 ...
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    for n in wdq:  # ... with one scale per output channel
        assert inits[n.input[1]].shape == (inits[n.input[0]].shape[0],)
    act_zero_points = [inits[n.input[2]] for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert act_zero_points and all(z.dtype == np.uint8 for z in act_zero_points)
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["logits"]
    from edgecc.data import load_dataset

    feeds = load_dataset(str(images), tinycnn.inputs).batches[5]  # a sample it was not calibrated on
    fp32 = tmp_path / "f.onnx"
    ir.save(tinycnn.model, fp32)
    a, b = _run(fp32, feeds).ravel(), _run(path, feeds).ravel()
    assert float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) > 0.99


def test_per_tensor_and_methods_change_the_scales(tinycnn, images):
    def scales(settings):
        proto = onnx.load_from_string(onnx.ModelProto.SerializeToString(
            __import__("onnx_ir").serde.serialize_model(quantize_prepared(tinycnn, str(images), settings).model)))
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
        weights = [inits[n.input[1]] for n in _weight_dequantizers(proto)]
        acts = sorted(float(inits[n.input[1]]) for n in proto.graph.node if n.op_type == "QuantizeLinear")
        return weights, acts

    w_tensor, act_minmax = scales({"per_channel": False, "samples": 6})
    assert all(w.shape == () for w in w_tensor)
    _, act_pct = scales({"method": "percentile", "percentile": 99.0, "samples": 6})
    _, act_entropy = scales({"method": "entropy", "samples": 6})
    assert len(act_pct) == len(act_minmax) == len(act_entropy)
    # a 99th percentile range is narrower than the full min/max range for every tensor
    assert sum(p < m for p, m in zip(act_pct, act_minmax)) >= len(act_minmax) // 2
    assert act_entropy != act_minmax


def test_random_calibration_warns_loudly(tinycnn):
    with pytest.warns(RandomCalibrationWarning, match="accuracy figures of the INT8 model are meaningless"):
        result = quantize_prepared(tinycnn, "random", {"samples": 2})
    assert any(n.startswith("WARNING: calibrating on random data") for n in result.notes)


def test_quantize_cli_writes_a_model_and_bad_data_keeps_the_old_file(tmp_path, images):
    out = tmp_path / "q.onnx"
    r = runner.invoke(app, ["quantize", "zoo:tinycnn", "-o", str(out), "--calibration", str(images), "--samples", "3",
                            "--method", "percentile"])
    assert r.exit_code == 0, r.stderr
    assert "QDQ percentile, activations U8, weights S8 per-channel, calibrated on 3 samples" in r.stdout
    before = out.read_bytes()
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    r = runner.invoke(app, ["quantize", "zoo:tinycnn", "-o", str(out), "--calibration", str(tmp_path / "bad.npz")])
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert " ".join(r.stderr.split()).startswith("error:") and "cannot read it as an .npz archive" in r.stderr
    assert out.read_bytes() == before
    r = runner.invoke(app, ["quantize", "zoo:tinycnn", "-o", str(out), "--calibration", str(images), "--method", "kl"])
    assert r.exit_code == 2 and "unknown calibration method 'kl'" in r.stderr
    r = runner.invoke(app, ["quantize", "zoo:tinycnn", "-o", str(tmp_path / "r.onnx"), "--calibration", "random", "--samples", "2"])
    assert r.exit_code == 0 and "WARNING:" in r.stderr and "meaningless" in r.stderr


def test_compile_int8_on_onnxruntime_verifies_on_calibration_like_inputs(tmp_path, images):
    art = api.compile("zoo:tinycnn", "host", tmp_path / "a", backend="onnxruntime", precision="int8",
                      calibration=str(images), quantize={"samples": 4})
    m = art.manifest
    assert m.precision == "int8" and "quantize-qdq" in m.passes
    assert any("calibrated on 4 samples" in n for n in m.notes)
    ops = {n.op_type for n in onnx.load(str(art.file("model.onnx"))).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    row = api.profile(tmp_path / "a", FAST, isolate=False)
    assert row.status == "ok" and row.verified is True and row.cosine > 0.99


def test_int8_without_calibration_and_unsupported_precisions_are_clear(tmp_path):
    with pytest.raises(BadInputError, match="int8 needs calibration data: --calibration DATA"):
        api.compile("zoo:tinycnn", "host", tmp_path / "a", backend="onnxruntime", precision="int8")
    assert not (tmp_path / "a").exists()
    with pytest.raises(UnsupportedError, match="cannot run bf16 on target host; it can: fp32, int8$"):
        api.compile("zoo:tinycnn", "host", tmp_path / "a", backend="onnxruntime", precision="bf16")
    r = runner.invoke(app, ["compare", "zoo:tinycnn", "-t", "host", "--backends", "onnxruntime", "--precisions", "fp32,int8"])
    assert r.exit_code == 2 and "int8 rows need calibration data" in " ".join(r.stderr.split())
    r = runner.invoke(app, ["compare", "zoo:tinycnn", "-t", "host", "--max-accuracy-drop", "1"])
    assert r.exit_code == 2 and "--max-accuracy-drop needs --eval DATA" in " ".join(r.stderr.split())


def test_accuracy_drop_is_baseline_minus_row_and_budget_flags():
    from edgecc.compare import accuracy_drops as _accuracy_drops

    rows = [ResultRow(backend="onnxruntime", precision="fp32", status="ok", accuracy=98.0, agreement=100.0),
            ResultRow(backend="onnxruntime", precision="int8", status="ok", accuracy=97.5, agreement=99.0),
            ResultRow(backend="x", precision="int8", status="ok", accuracy=96.0, agreement=97.0),
            ResultRow(backend="y", precision="fp32", status="failed")]
    got = _accuracy_drops(rows, 1.0)
    assert [r.accuracy_drop for r in got] == [0.0, 0.5, 2.0, None]
    assert [r.within_accuracy_budget for r in got] == [True, True, False, None]
    unlabelled = [r.model_copy(update={"accuracy": None}) for r in rows[:3]]
    assert [r.accuracy_drop for r in _accuracy_drops(unlabelled, None)] == [0.0, 1.0, 3.0]
    assert [r.within_accuracy_budget for r in _accuracy_drops(unlabelled, None)] == [None, None, None]


@pytest.mark.skipif(not (MNIST / "mnist_cnn.onnx").is_file(), reason="benchmarks/data/mnist_cnn.onnx is missing")
def test_compare_int8_with_accuracy_columns_on_real_mnist(tmp_path):
    model, cal, ev = MNIST / "mnist_cnn.onnx", MNIST / "mnist_calib.npz", MNIST / "mnist_eval.npz"
    r = runner.invoke(app, [
        "compare", str(model), "-t", "host", "--backends", "onnxruntime", "--precisions", "fp32,int8",
        "--calibration", str(cal), "--eval", str(ev), "--max-accuracy-drop", "1.0",
        "--warmup", "1", "--runs", "3", "--min-time", "0", "--json", str(tmp_path / "c.json"),
    ])
    assert r.exit_code == 0, r.stderr
    data = json.loads((tmp_path / "c.json").read_text())
    base, int8 = data["results"]
    assert (base["precision"], int8["precision"]) == ("fp32", "int8")
    assert data["max_accuracy_drop"] == 1.0 and "mnist_eval.npz" in data["eval_data"]
    assert {"backend", "precision", "status", "latency_ms", "speedup", "cosine", "verified"} <= set(int8)
    assert int8["status"] == "ok" and int8["verified"] is True and int8["eval_samples"] == 1000
    # the baseline's accuracy is what evaluate measures on the FP32 model; its agreement with itself is total
    assert base["accuracy"] == api.evaluate(model, str(ev)).top1 and base["agreement"] == 100.0
    assert base["accuracy"] > 95.0
    assert int8["accuracy_drop"] == pytest.approx(base["accuracy"] - int8["accuracy"])
    assert int8["within_accuracy_budget"] == (int8["accuracy_drop"] <= 1.0)
    assert int8["calibration"] == f"{cal} (up to 100 samples)" and base["calibration"] is None
    assert "top-1 %" in r.stdout and "drop pts" in r.stdout and "fastest within 1 points" in r.stdout


def test_compare_backend_options_are_backend_dot_key():
    from edgecc.cli.int8_options import backend_options

    assert backend_options(["openvino.int8_quantizer=nncf", "openvino.num_streams=2", "onnxruntime.graph_optimization_level=basic"]) == {
        "openvino": {"int8_quantizer": "nncf", "num_streams": 2}, "onnxruntime": {"graph_optimization_level": "basic"}}
    assert backend_options(None) is None
    r = runner.invoke(app, ["compare", "zoo:tinycnn", "-t", "host", "--option", "int8_quantizer=nncf"])
    assert r.exit_code == 2 and "compare takes BACKEND.KEY=VALUE" in " ".join(r.stderr.split())


def test_compare_with_random_calibration_warns_and_says_so_in_each_int8_row():
    with pytest.warns(RandomCalibrationWarning):
        report = api.compare("zoo:tinycnn", "host", backends=["onnxruntime"], precisions=["fp32", "int8"],
                             calibration="random", quantize={"samples": 2}, settings=FAST)
    assert [(r.precision, r.status) for r in report.results] == [("fp32", "ok"), ("int8", "ok")]
    assert report.results[1].calibration == report.calibration == "random (2 seeded samples; accuracy meaningless)"
    assert report.results[0].calibration is None and report.results[1].accuracy is None


def test_compare_eval_metrics_that_cannot_apply_fail_before_any_row(tmp_path):
    import onnx.helper as oh
    from onnx import TensorProto

    from conftest import make_model

    dense = make_model([oh.make_node("Relu", ["x"], ["y"])], [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
                       [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])])
    onnx.save(dense, str(tmp_path / "dense.onnx"))
    np.savez(tmp_path / "ev.npz", x=np.zeros((4, 2, 3, 3), np.float32), labels=np.array([0, 1, 0, 1]))
    r = runner.invoke(app, ["compare", str(tmp_path / "dense.onnx"), "-t", "host", "--backends", "onnxruntime",
                            "--eval", str(tmp_path / "ev.npz")])
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert "top-1 accuracy needs class scores shaped [N, C]; this output is [4, 2, 3, 3]" in " ".join(r.stderr.split())


def test_symmetric_s8_activations_have_zero_points_of_zero(tmp_path, images):
    out = tmp_path / "s8.onnx"
    r = runner.invoke(app, ["quantize", "zoo:tinycnn", "-o", str(out), "--calibration", str(images), "--samples", "2",
                            "--activations", "int8", "--symmetric-activations"])
    assert r.exit_code == 0, r.stderr
    assert "activations S8 symmetric, weights S8 per-channel" in r.stdout
    proto = onnx.load(str(out))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    zps = [inits[n.input[2]] for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert zps and all(z.dtype == np.int8 and int(z) == 0 for z in zps)
    r = runner.invoke(app, ["quantize", "zoo:tinycnn", "-o", str(out), "--calibration", str(images), "--activations", "int4"])
    assert r.exit_code == 2 and "quantisation setting activations" in r.stderr


def test_compile_cli_int8(tmp_path, images):
    r = runner.invoke(app, ["compile", "zoo:tinycnn", "-t", "host", "-b", "onnxruntime", "-p", "int8", "-o", str(tmp_path / "a")])
    assert r.exit_code == 2 and "int8 needs calibration data" in " ".join(r.stderr.split()) and not (tmp_path / "a").exists()
    r = runner.invoke(app, ["compile", "zoo:tinycnn", "-t", "host", "-b", "onnxruntime", "-p", "int8", "--calibration", "random",
                            "--samples", "2", "-o", str(tmp_path / "a")])
    assert r.exit_code == 0 and r.stderr.count("WARNING:") == 1 and "onnxruntime int8" in r.stdout
    r = runner.invoke(app, ["evaluate", str(tmp_path / "a"), "--data", str(images)])
    assert r.exit_code == 0, r.stderr
    assert "6 samples, top-1 agreement with FP32" in r.stdout  # no labels: agreement with zoo:tinycnn, its source


def test_compare_dense_outputs_get_psnr_against_fp32(tmp_path):
    import onnx.helper as oh
    from onnx import TensorProto

    from conftest import make_model

    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    conv = make_model([oh.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                      [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                      [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    onnx.save(conv, str(tmp_path / "conv.onnx"))
    np.savez(tmp_path / "d.npz", x=rng.uniform(0, 1, (6, 3, 8, 8)).astype(np.float32))
    report = api.compare(tmp_path / "conv.onnx", "host", backends=["onnxruntime"], precisions=["fp32", "int8"],
                         calibration=str(tmp_path / "d.npz"), eval_data=str(tmp_path / "d.npz"), settings=FAST)
    base, int8 = report.results
    assert int8.status == "ok" and int8.eval_samples == 6
    assert (int8.accuracy, int8.agreement, int8.accuracy_drop) == (None, None, None)
    assert 25.0 < int8.psnr_db < 80.0  # 8-bit quantisation of a conv: tens of dB, not exact
    assert base.psnr_db is None or base.psnr_db > 100.0  # FP32 against FP32: exact (inf, stored as null) or nearly
