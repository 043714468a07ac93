"""INT8 that keeps accuracy, from the CLI and the API: --equalize, --bias-correction, --method mse, and
--eval/--max-accuracy-drop (mixed precision). Models are the seeded ones of test_int8_accuracy.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from typer.testing import CliRunner

from edgecc import api
from edgecc.cli import app
from edgecc.data import load_dataset
from edgecc.graph.io import prepare_model, save_model
from edgecc.graph.quantize import FLOAT_LAYERS_KEY, QuantizeSettings, calibration_spec, quantize_qdq
from edgecc.graph.quantize._session import outputs

from test_int8_accuracy import _data, depthwise_net, sensitive_mlp

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def depthwise(tmp_path_factory) -> tuple[Path, Path]:
    """depthwise_net as a file, and 16 seeded calibration samples as an .npz."""
    d = tmp_path_factory.mktemp("dw")
    model = d / "dw.onnx"
    save_model(depthwise_net(seed=3, act="Relu6"), model)
    x = np.abs(np.random.default_rng(3).normal(size=(16, 3, 6, 6))).astype(np.float32)
    np.savez(d / "cal.npz", x=x)
    return model, d / "cal.npz"


@pytest.fixture(scope="module")
def mlp(tmp_path_factory) -> tuple[Path, Path, Path]:
    """sensitive_mlp as a file; 200 calibration samples; 200 evaluation samples labelled with FP32's top-1."""
    d = tmp_path_factory.mktemp("mlp")
    model = sensitive_mlp()
    save_model(model, d / "mlp.onnx")
    x = np.abs(np.random.default_rng(1).normal(size=(400, 16))).astype(np.float32)
    np.savez(d / "cal.npz", x=x[:200])
    np.savez(d / "eval.npz", x=x[200:], labels=outputs(model, _data(x[200:])).argmax(1))
    return d / "mlp.onnx", d / "cal.npz", d / "eval.npz"


def test_default_flags_write_the_same_bytes_as_quantize_qdq(tmp_path, depthwise):
    model, cal = depthwise
    out = tmp_path / "q.onnx"
    r = runner.invoke(app, ["quantize", str(model), "-o", str(out), "--calibration", str(cal), "--samples", "16"])
    assert r.exit_code == 0, r.output
    assert "equalisation" not in r.stdout and "bias correction" not in r.stdout
    prepared = prepare_model(str(model))
    settings = QuantizeSettings(samples=16)
    direct = quantize_qdq(prepared.model, load_dataset(calibration_spec(str(cal), settings), prepared.inputs), settings)
    assert out.read_bytes() == save_model(direct.model, tmp_path / "direct.onnx").read_bytes()


@pytest.mark.parametrize("mode", ["one-pass", "sequential"])
def test_equalize_bias_correction_and_mse_reach_the_model_and_say_so(tmp_path, depthwise, mode):
    model, cal = depthwise
    out = tmp_path / "q.onnx"
    r = runner.invoke(app, ["quantize", str(model), "-o", str(out), "--calibration", str(cal), "--samples", "16",
                            "--equalize", "--bias-correction", mode, "--method", "mse"])
    assert r.exit_code == 0, r.output
    text = _flat(r.stdout)
    assert (f"QDQ mse, activations U8, weights S8 per-channel, cross-layer equalisation, bias correction {mode}, "
            "calibrated on 16 samples") in text
    assert "cross-layer equalisation: 2 layer pairs" in text  # pw1 -> dw -> pw2, through ReLU6 bounded by the data
    assert f"bias correction ({mode}) on 3 layers" in text
    assert "per-tensor ranges by lowest quantisation MSE" in text
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert sum(n.op_type == "QuantizeLinear" for n in proto.graph.node) == 4
    x = np.abs(np.random.default_rng(3).normal(size=(16, 3, 6, 6))).astype(np.float32)
    ref = outputs(depthwise_net(seed=3, act="Relu6"), _data(x, 1))
    got = outputs(ir.load(out), _data(x, 1))
    # equalised weights: INT8 stays close to FP32 (relative to the output's spread)
    assert np.abs(got - ref).mean() < 0.05 * ref.std()


def test_unknown_method_and_bias_correction_are_clear(tmp_path, depthwise):
    model, cal = depthwise
    args = ["quantize", str(model), "-o", str(tmp_path / "q.onnx"), "--calibration", str(cal)]
    r = runner.invoke(app, args + ["--method", "kl"])
    assert r.exit_code == 2 and "unknown calibration method 'kl'; known: minmax, percentile, entropy, mse" in _flat(r.stderr)
    r = runner.invoke(app, args + ["--bias-correction", "twice"])
    assert r.exit_code == 2 and "unknown bias correction 'twice'; known: one-pass, sequential" in _flat(r.stderr)
    assert "Traceback" not in r.output and not (tmp_path / "q.onnx").exists()


def test_compile_records_non_default_quantisation_in_the_passes(tmp_path, depthwise):
    model, cal = depthwise
    assert QuantizeSettings().pass_record() == "quantize-qdq"
    assert (QuantizeSettings(method="mse", equalize=True, bias_correction="one-pass").pass_record()
            == "quantize-qdq(equalize,bias-correction=one-pass,method=mse)")
    passes = {}
    for name, extra in (("default", []), ("accurate", ["--equalize", "--method", "mse"])):
        r = runner.invoke(app, ["compile", str(model), "-t", "host", "-b", "onnxruntime", "-p", "int8", "--calibration",
                                str(cal), "--samples", "16", "-o", str(tmp_path / name), *extra])
        assert r.exit_code == 0, r.output
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        passes[name] = [p for p in manifest["passes"] if p.startswith("quantize")]
        notes = " ".join(manifest["notes"])
    assert passes == {"default": ["quantize-qdq"], "accurate": ["quantize-qdq(equalize,method=mse)"]}
    assert "cross-layer equalisation: 2 layer pairs" in notes


def test_budget_keeps_the_sensitive_layer_in_float_and_names_it_in_the_metadata(tmp_path, mlp):
    model, cal, ev = mlp
    out = tmp_path / "mixed.onnx"
    r = runner.invoke(app, ["quantize", str(model), "-o", str(out), "--calibration", str(cal), "--samples", "200",
                            "--eval", str(ev), "--max-accuracy-drop", "5"])
    assert r.exit_code == 0, r.output
    text = _flat(r.stdout)
    assert "layers kept in float (1): fc2" in text and 'layers kept in float: ["fc2"]' not in text
    # the search's progress on stderr (not a terminal here: a line per phase and per evaluation)
    assert "mixed precision: ranking layers (3)" in r.stderr
    assert "mixed precision: evaluating with 1 of 3 layers in float" in r.stderr
    m = re.search(r"mixed precision: FP32 ([\d.]+)%, all INT8 ([\d.]+)%, result ([\d.]+)% \(drop (-?[\d.]+) points, "
                  r"within budget\)", text)
    assert m, text
    fp32, int8, score, drop = map(float, m.groups())
    assert fp32 == 100.0 and int8 < 20.0 and drop <= 5.0 and abs(fp32 - score - drop) < 0.01
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert json.loads({p.key: p.value for p in proto.metadata_props}[FLOAT_LAYERS_KEY]) == ["fc2"]
    # the file holds what was measured: its top-1 on the evaluation labels is the printed result
    with np.load(ev) as data:
        x, labels = data["x"], data["labels"]
    got = outputs(ir.load(out), _data(x)).argmax(1)
    assert abs(100.0 * float(np.mean(got == labels)) - score) < 0.01
    r = runner.invoke(app, ["evaluate", str(out), "--data", str(ev), "--metric", "top1"])
    assert r.exit_code == 0 and f"top-1 accuracy {score:.2f}%" in r.stdout


def test_api_budget_result_names_the_float_layers(tmp_path, mlp):
    model, cal, ev = mlp
    result = api.quantize(str(model), tmp_path / "m.onnx", str(cal), {"samples": 200}, eval_data=str(ev),
                          max_accuracy_drop=5.0)
    assert result.mixed is not None and result.mixed.float_layers == ["fc2"] and result.mixed.within_budget
    assert result.quantized_nodes < quantize_qdq(sensitive_mlp(), _data(np.ones((8, 16), np.float32))).quantized_nodes


@pytest.mark.parametrize("flags, message", [
    (["--eval", "EVAL"], "--eval DATA and --max-accuracy-drop POINTS go together"),
    (["--max-accuracy-drop", "1"], "--eval DATA and --max-accuracy-drop POINTS go together"),
    (["--eval", "EVAL", "--max-accuracy-drop", "-1"], "--max-accuracy-drop must be a number of points >= 0, got -1.0"),
    (["--eval", "random", "--max-accuracy-drop", "1"], "--eval needs real data"),
])
def test_budget_flags_that_do_not_fit_are_one_clear_error(tmp_path, mlp, flags, message):
    model, cal, ev = mlp
    out = tmp_path / "m.onnx"
    r = runner.invoke(app, ["quantize", str(model), "-o", str(out), "--calibration", str(cal),
                            *[str(ev) if f == "EVAL" else f for f in flags]])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert message in _flat(r.stderr)
    assert not out.exists()


def test_compare_int8_row_holds_the_budget_by_mixed_precision(tmp_path, mlp):
    model, cal, ev = mlp
    arts = tmp_path / "arts"
    r = runner.invoke(app, ["compare", str(model), "-t", "host", "--backends", "onnxruntime", "--precisions", "fp32,int8",
                            "--calibration", str(cal), "--samples", "200", "--eval", str(ev), "--max-accuracy-drop", "5",
                            "--runs", "3", "--warmup", "1", "--min-time", "0", "--artifacts-dir", str(arts),
                            "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rows = {row["precision"]: row for row in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert rows["int8"]["status"] == "ok" and rows["int8"]["float_layers"] == ["fc2"]
    assert rows["fp32"]["float_layers"] is None
    assert rows["int8"]["accuracy_drop"] <= 5.0 and rows["int8"]["within_accuracy_budget"] is True
    manifest = json.loads(next(arts.glob("*int8*/manifest.json")).read_text())
    assert manifest["passes"][2:4] == ["quantize-qdq", "mixed-precision(float_layers=1)"]
    assert 'layers kept in float: ["fc2"]' in manifest["notes"]


def test_over_budget_still_writes_the_closest_model_and_warns(tmp_path, mlp, monkeypatch):
    import edgecc.graph.quantize as quantize

    real = quantize.quantize_within_budget
    # no candidate layer may go back to float: the budget cannot be met
    monkeypatch.setattr(quantize, "quantize_within_budget", lambda *a, **k: real(*a, **k, layers=[]))
    model, cal, ev = mlp
    out = tmp_path / "m.onnx"
    r = runner.invoke(app, ["quantize", str(model), "-o", str(out), "--calibration", str(cal), "--samples", "200",
                            "--eval", str(ev), "--max-accuracy-drop", "5"])
    assert r.exit_code == 0, r.output
    m = re.search(r"WARNING: OVER budget: drop ([\d.]+) points > 5 even with these layers in float", _flat(r.stderr))
    assert m and float(m.group(1)) > 80.0
    assert "OVER budget" in r.stdout and "layers kept in float (0): none" in r.stdout
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta[FLOAT_LAYERS_KEY]) == []


def test_compare_budget_in_another_metric_only_flags_rows(tmp_path, mlp):
    model, cal, ev = mlp
    r = runner.invoke(app, ["compare", str(model), "-t", "host", "--backends", "onnxruntime", "--precisions", "fp32,int8",
                            "--calibration", str(cal), "--samples", "200", "--eval", str(ev), "--max-accuracy-drop", "5",
                            "--metric", "agreement", "--runs", "3", "--warmup", "1", "--min-time", "0",
                            "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rows = {row["precision"]: row for row in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert rows["int8"]["float_layers"] is None and rows["int8"]["within_accuracy_budget"] is False
    assert "over budget: onnxruntime int8" in _flat(r.stdout)
