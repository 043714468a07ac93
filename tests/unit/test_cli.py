"""The edgecc command: output, JSON, and one clear line plus a documented exit code for bad input."""

from __future__ import annotations

import json

import onnx
import pytest
from typer.testing import CliRunner

from edgecc.backends.base import Availability
from edgecc.cli import app

runner = CliRunner()
FAST = ["--warmup", "1", "--runs", "3", "--min-time", "0"]


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def assert_clean_error(code, stderr, expected_code, *fragments):
    assert code == expected_code, stderr
    assert "Traceback" not in stderr
    text = " ".join(stderr.split())
    assert text.startswith("error:")
    for f in fragments:
        assert f in text


def test_targets_table_and_json():
    code, out, _ = run("targets")
    assert code == 0 and "raspberry-pi-4" in out and "jetson-orin-nano" in out
    code, out, _ = run("targets", "--json")
    data = json.loads(out)
    assert code == 0 and len(data) >= 13 and {"name", "kind", "peak_fp32_gflops"} <= set(data[0])


def test_doctor_reports_host_and_install_command(monkeypatch):
    from edgecc.backends.openvino import OpenVinoBackend

    monkeypatch.setattr(OpenVinoBackend, "availability", lambda self: Availability(False, "No module named 'openvino'"))
    code, out, _ = run("doctor")
    assert code == 0
    assert "avx512f" in out and "cores" in out
    assert 'pip install "edgecc[openvino]"' in out
    code, out, _ = run("doctor", "--json")
    data = json.loads(out)
    rows = {r["backend"]: r for r in data["backends"]}
    assert rows["onnxruntime"]["available"] and rows["onnxruntime"]["versions"]["onnxruntime"]
    assert rows["openvino"]["install"] == 'pip install "edgecc[openvino]"'


def test_inspect_json():
    code, out, _ = run("inspect", "zoo:tinycnn", "--json", "-")
    data = json.loads(out)
    assert code == 0 and data["op_histogram"]["Conv"] == 5 and data["flops"] > 1e6
    assert {b["backend"]: b["unsupported_ops"] for b in data["backends"]}["onnxruntime"] == []


def test_inspect_names_unsupported_ops(tmp_path):
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
    code, out, _ = run("inspect", path)
    assert code == 0 and "onnxruntime: cannot run com.acme::FooBar" in " ".join(out.split())


def test_zoo_list_and_export(tmp_path):
    code, out, _ = run("zoo", "list")
    assert code == 0 and all(n in out for n in ("resnet18", "resnet50", "mobilenetv2", "bert-tiny"))
    code, _, _ = run("zoo", "export", "bert-tiny", "-o", tmp_path / "bert.onnx")
    model = onnx.load(str(tmp_path / "bert.onnx"))
    assert code == 0 and model.graph.input[0].type.tensor_type.shape.dim[1].dim_param == "sequence"


def test_compile_and_profile_json(tmp_path):
    code, out, _ = run("compile", "zoo:tinycnn", "--target", "host", "--backend", "onnxruntime", "-o", tmp_path / "a")
    assert code == 0 and "compiled zoo:tinycnn for host with onnxruntime fp32" in out
    code, out, _ = run("profile", tmp_path / "a", *FAST, "--json", "-")
    row = json.loads(out)
    assert code == 0 and row["status"] == "ok" and row["verified"] is True and "speedup" not in row
    assert row["latency_ms"]["p50"] > 0 and row["runs"] >= 3


def test_compare_json_to_file(tmp_path):
    code, out, _ = run("compare", "zoo:tinycnn", "--target", "host", "--backends", "onnxruntime", *FAST,
                       "--json", tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and data["results"][0]["speedup"] == 1.0 and "onnxruntime" in out


def test_profile_exit_4_when_outputs_are_wrong(faulty_backend_installed, tmp_path):
    code, _, err = run("compile", "zoo:tinycnn", "-t", "host", "-b", "faulty", "--option", "fault=wrong", "-o", tmp_path / "a")
    assert code == 0, err
    code, _, err = run("profile", tmp_path / "a", *FAST)
    assert code == 4 and "outputs outside the fp32 tolerance" in err


def test_backend_unavailable_exits_3(monkeypatch, tmp_path):
    from edgecc.backends.openvino import OpenVinoBackend

    monkeypatch.setattr(OpenVinoBackend, "availability", lambda self: Availability(False, "No module named 'openvino'"))
    code, _, err = run("compile", "zoo:tinycnn", "-t", "host", "-b", "openvino", "-o", tmp_path / "a")
    assert_clean_error(code, err, 3, "backend openvino is unavailable", 'pip install "edgecc[openvino]"')
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("args, fragments", [
    (["compile", "zoo:tinycnn", "-t", "raspbery-pi-4", "-o", "{tmp}/a"], ["unknown target 'raspbery-pi-4'", "did you mean raspberry-pi-4?"]),
    (["compile", "zoo:tinycnn", "-t", "host", "-b", "tvmm", "-o", "{tmp}/a"], ["unknown backend 'tvmm'"]),
    (["compile", "{tmp}/missing.onnx", "-t", "host", "-o", "{tmp}/a"], ["missing.onnx: no such file"]),
    (["inspect", "{tmp}/empty.onnx"], ["empty.onnx: file is empty"]),
    (["inspect", "zoo:tinycnn", "--input-shape", "input:1,3,x"], ["malformed --input-shape 'input:1,3,x'"]),
    (["inspect", "zoo:tinycnn", "--input-shape", "input:1,4,32,32"], ["dimension 1 is 4, but the model fixes it to 3"]),
    (["compare", "zoo:tinycnn", "-t", "host", "--precisions", "fp64"], ["unknown precision 'fp64'"]),
    (["compile", "zoo:tinycnn", "-t", "host", "-b", "onnxruntime", "--option", "nonsense", "-o", "{tmp}/a"], ["malformed --option"]),
    (["compile", "zoo:tinycnn", "-t", "host", "-b", "onnxruntime", "--option", "threads=2", "-o", "{tmp}/a"], ["onnxruntime option threads"]),
    (["profile", "{tmp}"], ["not an edgecc artifact"]),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, fragments):
    (tmp_path / "empty.onnx").write_bytes(b"")
    code, _, err = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert_clean_error(code, err, 2, *fragments)
    assert not (tmp_path / "a").exists()


def test_unknown_flag_is_a_usage_error():
    code, _, _ = run("compile", "zoo:tinycnn", "--frobnicate")
    assert code == 2
