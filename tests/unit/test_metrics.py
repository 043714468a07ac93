"""Metrics beyond classification: top-5 and cosine built in, user metrics plugged in through the edgecc.metrics
entry points or as MODULE:FUNCTION, and used by evaluate, compare and search."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecc import api
from edgecc.cli import app
from edgecc.errors import BadInputError
from edgecc.evaluation import compute_metrics, get_metric, top5_accuracy
from edgecc.evaluation.metrics import mean_cosine

FAST = api.ProfileSettings(warmup=1, runs=3, min_time_s=0.0, layer_runs=0)


def test_top5_and_cosine_on_known_numbers():
    scores = np.array([[0, 1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1, 0], [0, 0, 0, 0, 0, 0, 1.0]])
    # labels 2 (5th best: in), 6 (worst: out), 6 (best: in)
    assert top5_accuracy(scores, np.array([2, 6, 6])) == pytest.approx(200 / 3)
    assert top5_accuracy(scores[:, :3], np.array([0, 2, 1])) == 100.0  # fewer than five classes: all count
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert mean_cosine(a, a * 3) == pytest.approx(1.0)
    assert mean_cosine(a, np.array([[0.0, 1.0], [0.0, 1.0]])) == pytest.approx(0.5)


def test_module_function_and_entry_point_metrics(user_metrics_installed):
    out, ref = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 2.0], [3.0, 4.0]])
    res = compute_metrics(out, np.array([1, 0]), ref, ("mae", "user_metrics:class0_recall", "top1"))
    assert res.values == {"mae": 0.25, "user_metrics:class0_recall": 0.0, "top1": 50.0}
    assert get_metric("mae").higher_is_better is False and get_metric("mae").needs == "reference"
    with pytest.raises(BadInputError, match="metric mae compares with the FP32 reference"):
        compute_metrics(out, np.array([1, 0]), None, ("mae",))
    with pytest.raises(BadInputError, match="cannot import no_such_module"):
        get_metric("no_such_module:f")
    with pytest.raises(BadInputError, match="user_metrics has no 'nope'"):
        get_metric("user_metrics:nope")
    with pytest.raises(BadInputError, match="unknown metric 'map'; known: top1, top5, agreement, psnr, cosine, mae"):
        get_metric("map")


def test_a_plugged_in_metric_decides_compare_drops(user_metrics_installed, tmp_path):
    """compare --metric mae: each row's drop is its mean absolute error from the baseline's outputs, with the
    sign of a lower-is-better metric (INT8's error is a positive drop)."""
    rng = np.random.default_rng(0)
    data = tmp_path / "eval.npz"
    np.savez(data, input=rng.standard_normal((16, 3, 32, 32)).astype(np.float32), labels=rng.integers(0, 10, 16))
    report = api.compare("zoo:tinycnn", "host", backends=["onnxruntime"], precisions=["fp32", "int8"], calibration=str(data),
                         eval_data=str(data), metric="mae", max_accuracy_drop=1e-5, settings=FAST)
    base, int8 = report.results
    assert report.accuracy_metric == "mae"
    # the baseline's artifact runs with onnxruntime's full optimisations, the reference with basic ones: ~1e-8 apart
    assert base.metrics["mae"] < 1e-6 and base.accuracy_drop == 0.0 and base.within_accuracy_budget
    assert int8.metrics["mae"] > 100 * base.metrics["mae"] + 1e-5  # 8-bit error: far above the baseline's
    assert int8.accuracy_drop == pytest.approx(int8.metrics["mae"] - base.metrics["mae"])
    assert int8.within_accuracy_budget is False
    r = CliRunner().invoke(app, ["compare", "zoo:tinycnn", "-t", "host", "--eval", str(data), "--metric", "nosuch"])
    assert r.exit_code == 2 and "unknown metric 'nosuch'" in r.stderr


def test_a_plugged_in_metric_is_searched_on(user_metrics_installed, tmp_path):
    rng = np.random.default_rng(1)
    data = tmp_path / "eval.npz"
    np.savez(data, input=rng.standard_normal((8, 3, 32, 32)).astype(np.float32), labels=rng.integers(0, 10, 8))
    r = CliRunner().invoke(app, ["search", "zoo:tinycnn", "-t", "host", "--backends", "onnxruntime", "--precisions", "fp32",
                                 "--eval", str(data), "--metric", "mae", "--prune", "0,0.5", "--max-accuracy-drop", "0.00001",
                                 "--runs", "3", "--min-time", "0", "--warmup", "1", "--layer-runs", "0",
                                 "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.stderr
    found = json.loads((tmp_path / "s.json").read_text())
    assert found["accuracy_metric"] == "mae" and found["request"]["metric"] == "mae"
    drops = {v["id"]: v["accuracy_drop"] for v in found["variants"]}
    assert drops["onnxruntime-fp32-prune0-lowrankoff"] == 0.0 and drops["onnxruntime-fp32-prune0.5-lowrankoff"] > 1e-3
    assert found["recommended"]["id"] == "onnxruntime-fp32-prune0-lowrankoff"  # the pruned one is over the budget
