"""Accuracy metrics: exact numbers on tiny hand-made sets, through the API and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto
from typer.testing import CliRunner

from edgecc import api
from edgecc.cli import app
from edgecc.errors import BadInputError
from edgecc.evaluation import compute_metrics, psnr, top1_accuracy, top1_agreement
from conftest import make_model

runner = CliRunner()


def _elementwise_model(path, op: str, const: float | None = None):
    """scores[1,4] -> op -> out[1,4] (Identity, Neg, or Add of ``const``)."""
    inputs = ["scores"] + (["c"] if const is not None else [])
    inits = [onnx.numpy_helper.from_array(np.array(const, dtype=np.float32), "c")] if const is not None else []
    model = make_model(
        [oh.make_node(op, inputs, ["out"])],
        [oh.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])], inits,
    )
    onnx.save(model, str(path))
    return path


@pytest.fixture
def labelled(tmp_path):
    """10 samples whose argmax is known: sample i peaks at class i % 4; labels agree on 7 of them."""
    scores = np.full((10, 4), 0.1, dtype=np.float32)
    scores[np.arange(10), np.arange(10) % 4] = 1.0
    scores[:, 3] += np.linspace(0.0, 0.05, 10, dtype=np.float32)  # distinct values for the PSNR check
    labels = np.arange(10) % 4
    labels[[1, 4, 8]] = (labels[[1, 4, 8]] + 1) % 4  # 3 wrong -> 70 %
    path = tmp_path / "set.npz"
    np.savez(path, scores=scores, labels=labels)
    return path, scores, labels


def test_metric_functions_give_exact_numbers():
    out = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert top1_accuracy(out, np.array([1, 0, 0, 0])) == 75.0
    assert top1_agreement(out, out[:, ::-1]) == 0.0
    assert top1_agreement(out[:, None, :], out) == 100.0  # [N, 1, C] is class scores too
    ref = np.array([0.0, 1.0, 2.0, 3.0])
    assert psnr(ref + 0.1, ref) == pytest.approx(10 * math.log10(9.0 / 0.01))
    assert psnr(ref, ref) == math.inf


def test_metric_misuse_is_a_clear_error():
    with pytest.raises(BadInputError, match="class scores shaped \\[N, C\\]; this output is \\[2, 3, 4, 4\\]"):
        top1_accuracy(np.zeros((2, 3, 4, 4)), np.array([0, 1]))
    with pytest.raises(BadInputError, match="labels range over \\[0, 7\\] but the model scores 2 classes"):
        top1_accuracy(np.zeros((2, 2)), np.array([0, 7]))
    with pytest.raises(BadInputError, match="top-1 accuracy needs labels"):
        compute_metrics(np.zeros((2, 2)), None, None, ("top1",))
    with pytest.raises(BadInputError, match="unknown metric 'top7'"):
        compute_metrics(np.zeros((2, 2)), np.array([0, 1]), None, ("top7",))


def test_evaluate_model_on_a_tiny_labelled_set(tmp_path, labelled):
    path, scores, labels = labelled
    ident = _elementwise_model(tmp_path / "ident.onnx", "Identity")
    res = api.evaluate(ident, str(path))
    assert (res.samples, res.top1, res.agreement, res.psnr_db) == (10, 70.0, None, None)
    # Neg turns argmax into argmin: class 0 for the 3 samples peaking at classes 1..3 (ties go to the first index)
    neg = _elementwise_model(tmp_path / "neg.onnx", "Neg")
    res = api.evaluate(neg, str(path), metrics=("top1", "agreement"), reference=str(ident))
    expected_pred = (-scores).argmax(1)
    assert res.top1 == 100.0 * np.mean(expected_pred == labels)
    assert res.agreement == 100.0 * np.mean(expected_pred == scores.argmax(1))
    shifted = _elementwise_model(tmp_path / "add.onnx", "Add", 0.25)
    res = api.evaluate(shifted, str(path), metrics=("psnr",), reference=str(ident))
    peak = float(scores.max() - scores.min())
    assert res.psnr_db == pytest.approx(10 * math.log10(peak**2 / 0.0625), rel=1e-6)


def test_evaluate_cli_prints_and_writes_json(tmp_path, labelled):
    path, _, _ = labelled
    ident = _elementwise_model(tmp_path / "ident.onnx", "Identity")
    result = runner.invoke(app, ["evaluate", str(ident), "--data", str(path), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.stderr
    assert "10 samples, top-1 accuracy 70.00%" in result.stdout
    assert json.loads((tmp_path / "r.json").read_text()) == {"samples": 10, "top1": 70.0, "agreement": None, "psnr_db": None,
                                                                 "metrics": {"top1": 70.0}}
    result = runner.invoke(app, ["evaluate", str(ident), "--data", str(path), "--metric", "agreement"])
    assert result.exit_code == 2 and "agreement compares with the FP32 reference model: give one" in " ".join(result.stderr.split())
    result = runner.invoke(app, ["evaluate", str(ident), "--data", "random"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr and "not random" in result.stderr


def test_evaluate_an_artifact_uses_its_source_model_as_reference(tmp_path, labelled):
    path, _, _ = labelled
    ident = _elementwise_model(tmp_path / "ident.onnx", "Identity")
    api.compile(ident, "host", tmp_path / "art", backend="onnxruntime")
    res = api.evaluate(tmp_path / "art", str(path))
    assert (res.samples, res.top1, res.agreement) == (10, 70.0, 100.0)
