"""A corpus of broken models, each made here, through every command that reads a model: exit 2 (or the
documented code), one line naming the problem and the file, no traceback, nothing written at the output."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto as T
from onnx import numpy_helper as nh
from typer.testing import CliRunner

from conftest import make_model
from edgecc.cli import app

X = oh.make_tensor_value_info("x", T.FLOAT, [1, 4])
Y = oh.make_tensor_value_info("y", T.FLOAT, [1, 4])
W = nh.from_array(np.eye(4, dtype=np.float32), "w")


def _good() -> onnx.ModelProto:
    return make_model([oh.make_node("MatMul", ["x", "w"], ["y"])], [X], [Y], [W])


def _write(path, model):
    onnx.save(model, str(path))
    return path


def _external(tmp_path, cut: int | None):
    path = tmp_path / "ext.onnx"
    onnx.save(_good(), str(path), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    data = tmp_path / "ext.onnx.data"
    if cut is None:
        data.unlink()
    else:
        data.write_bytes(data.read_bytes()[:cut])
    return path


def corpus(tmp_path) -> dict[str, tuple[object, str]]:
    """name -> (path, a fragment the one-line error must contain)."""
    good = _write(tmp_path / "good.onnx", _good())
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(7).bytes(2048))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size - 20])
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    a_dir = tmp_path / "a_directory.onnx"
    a_dir.mkdir()
    m = lambda nodes, **kw: make_model(nodes, kw.pop("ins", [X]), kw.pop("outs", [Y]), **kw)  # noqa: E731
    return {
        "empty": (empty, "file is empty"),
        "random bytes": (noise, "not a valid ONNX model"),
        "truncated": (truncated, "not a valid ONNX model"),
        "directory": (a_dir, "is a directory"),
        "missing file": (tmp_path / "nope.onnx", "no such file"),
        "missing initializer": (_write(tmp_path / "noinit.onnx", m([oh.make_node("MatMul", ["x", "w"], ["y"])])), "invalid ONNX model"),
        "cycle": (_write(tmp_path / "cycle.onnx", m([
            oh.make_node("Add", ["x", "b"], ["a"]), oh.make_node("Relu", ["a"], ["b"]), oh.make_node("Identity", ["a"], ["y"])
        ])), "topologically sorted"),
        "duplicate outputs": (_write(tmp_path / "dupout.onnx", m([oh.make_node("Relu", ["x"], ["y"])], outs=[Y, Y])), "appear more than once"),
        "duplicate node outputs": (_write(tmp_path / "ssa.onnx", m([
            oh.make_node("Relu", ["x"], ["y"]), oh.make_node("Sigmoid", ["x"], ["y"])
        ])), "invalid ONNX model"),
        "undeclared domain": (_write(tmp_path / "domain.onnx", m([oh.make_node("Foo", ["x"], ["y"], domain="com.acme")])), "No opset import for domain 'com.acme'"),
        "unknown op": (_write(tmp_path / "unknownop.onnx", m([oh.make_node("FooBarOp", ["x"], ["y"])])), "No Op registered for FooBarOp"),
        "opset too old": (_write(tmp_path / "opset5.onnx", m([oh.make_node("Relu", ["x"], ["y"])], opset=5, ir_version=3)), "opset 5 is older than 7"),
        "opset too new": (_write(tmp_path / "opset99.onnx", m([oh.make_node("Relu", ["x"], ["y"])], opset=99)), "opset 99 is newer than"),
        "dynamic input": (_write(tmp_path / "dyn.onnx", m([oh.make_node("Relu", ["x"], ["y"])],
            ins=[oh.make_tensor_value_info("x", T.FLOAT, ["N", 4])], outs=[oh.make_tensor_value_info("y", T.FLOAT, ["N", 4])])),
            "dynamic input shapes need values: x [N,4]"),
        "zero-sized dimension": (_write(tmp_path / "zero.onnx", m([oh.make_node("Relu", ["x"], ["y"])],
            ins=[oh.make_tensor_value_info("x", T.FLOAT, [0, 4])], outs=[oh.make_tensor_value_info("y", T.FLOAT, [0, 4])])),
            "zero-sized dimension"),
        "external data missing": (_external(tmp_path / "", None), "which is missing"),
    }


def _short_external(tmp_path):
    sub = tmp_path / "short"
    sub.mkdir()
    return _external(sub, 10)


runner = CliRunner()


def _commands(path, out):
    return {
        "inspect": ["inspect", path],
        "optimize": ["optimize", path, "-o", out / "o.onnx"],
        "compile": ["compile", path, "-t", "host", "-b", "onnxruntime", "-o", out],
        "compare": ["compare", path, "-t", "host", "--backends", "onnxruntime", "--runs", "1", "--min-time", "0",
                    "--json", out / "r.json"],
    }


@pytest.mark.parametrize("command", ["inspect", "optimize", "compile", "compare"])
def test_every_bad_model_gives_one_clear_line(tmp_path, command):
    cases = corpus(tmp_path)
    cases["external data too short"] = (_short_external(tmp_path), "too short for initializer 'w'")
    for name, (path, fragment) in cases.items():
        out = tmp_path / f"out-{command}"
        result = runner.invoke(app, [str(a) for a in _commands(path, out)[command]])
        err = " ".join(result.stderr.split())
        assert result.exit_code == 2, f"{name}: exit {result.exit_code}: {result.stderr}"
        assert "Traceback" not in result.stderr and err.startswith("error:"), name
        assert result.stderr.strip().count("\n") == 0, f"{name}: more than one line: {result.stderr}"
        assert fragment in err, f"{name}: {err}"
        assert os.path.basename(str(path)) in err, f"{name}: the file is not named: {err}"
        assert not out.exists(), f"{name}: {command} wrote {out}"


def test_nan_weights_warn_but_work(tmp_path):
    bad = make_model([oh.make_node("MatMul", ["x", "w"], ["y"])], [X], [Y], [nh.from_array(np.full((4, 4), np.nan, np.float32), "w")])
    path = _write(tmp_path / "nan.onnx", bad)
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0
    assert "warning: " in result.stderr and "NaN or Inf in initializer(s) w (16 of 16)" in " ".join(result.stderr.split())


def test_unsupported_op_at_compile_exits_2(tmp_path):
    model = make_model([oh.make_node("Foo", ["x"], ["y"], domain="com.acme")], [X], [Y], domains=["com.acme"])
    path = _write(tmp_path / "custom.onnx", model)
    result = runner.invoke(app, ["compile", str(path), "-t", "host", "-b", "onnxruntime", "-o", str(tmp_path / "a")])
    assert result.exit_code == 2 and "does not support op(s): com.acme::Foo" in " ".join(result.stderr.split())
    assert "custom.onnx" in result.stderr and not (tmp_path / "a").exists()


@pytest.mark.slow
def test_model_over_2gb_in_external_data(tmp_path):
    """2.5 GiB of weights in a sparse external file (no disk used): inspect, compile and profile work."""
    n = 640 * 2**20
    w = onnx.TensorProto(name="w", data_type=T.FLOAT, dims=[n], data_location=T.EXTERNAL)
    for k, v in (("location", "big.onnx.data"), ("offset", "0"), ("length", str(4 * n))):
        w.external_data.add(key=k, value=v)
    model = make_model(
        [oh.make_node("ReduceSum", ["w"], ["s"], keepdims=1), oh.make_node("Add", ["x", "s"], ["y"])],
        [oh.make_tensor_value_info("x", T.FLOAT, [1])], [oh.make_tensor_value_info("y", T.FLOAT, [1])], [w],
    )
    path = _write(tmp_path / "big.onnx", model)
    with open(tmp_path / "big.onnx.data", "wb") as f:
        f.truncate(4 * n)
    result = runner.invoke(app, ["inspect", str(path), "--json", "-"])
    assert result.exit_code == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["params"] == n and data["param_bytes"] == 4 * n
    out = tmp_path / "art"
    result = runner.invoke(app, ["compile", str(path), "-t", "host", "-b", "onnxruntime", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert (out / "model.onnx.data").stat().st_size == 4 * n
    result = runner.invoke(app, ["profile", str(out), "--runs", "2", "--min-time", "0", "--layer-runs", "0", "--json", "-"])
    row = json.loads(result.stdout)
    assert result.exit_code == 0 and row["verified"] is True and row["max_abs_error"] == 0.0
