"""The search's frontier, budget and recommendation, exact on constructed rows (no model runs)."""

from __future__ import annotations

import shlex

import pytest

from edgecc.errors import BadInputError
from edgecc.profiling.timing import LatencyStats
from edgecc.report.schema import ResultRow
from edgecc.search import GraphVariant, Measured, grid, parse_space, parse_time_budget
from edgecc.search.results import derive as derive_variants


def parse_prune(text):
    return parse_space("prune", text)


def parse_lowrank(text):
    return parse_space("lowrank", text)


def row(backend, precision, p50, accuracy, status="ok"):
    lat = LatencyStats(p50=p50, p90=p50, p99=p50, mean=p50, std=0.0, min=p50) if status == "ok" else None
    return ResultRow(backend=backend, precision=precision, status=status, latency_ms=lat, accuracy=accuracy,
                     agreement=None if accuracy is None else 100.0, error=None if status == "ok" else "it broke")


CMD = {"calibration": None, "quantize": None, "input_shapes": None, "targets_file": None}


def derive(budget=1.0):
    measured = [
        Measured(GraphVariant(), [row("onnxruntime", "fp32", 10.0, 90.0), row("openvino", "int8", 4.0, 89.5),
                                  row("openvino", "fp32", 6.0, 90.0)]),
        Measured(GraphVariant(prune=0.5), [
            row("onnxruntime", "fp32", 5.0, 88.0),          # dominated by openvino-int8-prune0 (4.0 ms, 0.5)
            row("openvino", "int8", 2.0, 85.0),             # fastest of all, 5 points over budget
            row("openvino", "fp32", 3.0, None),             # accuracy not measured: never recommended, not on the frontier
            row("tvm", "fp32", 1.0, None, status="failed"),
        ]),
        Measured(GraphVariant(prune=0.3, lowrank=0.9), [
            row("onnxruntime", "fp32", 3.5, 89.0),          # exactly on the budget: 1.0 point
            row("openvino", "int8", 3.5, 89.0),             # equal to the row above: both kept
        ]),
    ]
    return derive_variants(measured, budget, "m.onnx", "host", CMD)


def test_frontier_is_exact_and_recommendation_is_fastest_within_budget():
    metric, baseline, variants, pareto, rec = derive()
    assert metric == "top1" and baseline["accuracy"] == 90.0 and baseline["latency_ms_p50"] == 10.0
    assert baseline["id"] == "onnxruntime-fp32-prune0-lowrankoff"
    # (10, 0) is dominated by (6, 0); (5, 2) by (4, 0.5); the unmeasured and failed rows take no part; equal points stay.
    assert pareto == ["openvino-int8-prune0-lowrankoff", "openvino-fp32-prune0-lowrankoff", "openvino-int8-prune0.5-lowrankoff",
                      "onnxruntime-fp32-prune0.3-lowrank0.9", "openvino-int8-prune0.3-lowrank0.9"]
    by_id = {v["id"]: v for v in variants}
    assert len(by_id) == 9
    assert by_id["openvino-int8-prune0.5-lowrankoff"]["accuracy_drop"] == 5.0
    assert by_id["openvino-int8-prune0.5-lowrankoff"]["within_accuracy_budget"] is False
    assert by_id["openvino-fp32-prune0.5-lowrankoff"]["accuracy_drop"] is None
    assert by_id["openvino-int8-prune0-lowrankoff"]["speedup"] == 2.5
    assert by_id["openvino-int8-prune0.3-lowrank0.9"]["prune"] == 0.3 and by_id["openvino-int8-prune0.3-lowrank0.9"]["lowrank"] == 0.9
    # 3.5 ms at a 1.0-point drop beats 4.0 ms; the 2.0 ms (over budget) and 3.0 ms (unmeasured) rows are not eligible.
    assert rec["id"] == "onnxruntime-fp32-prune0.3-lowrank0.9" and rec["accuracy_drop"] == 1.0
    assert shlex.split(rec["command"]) == ["edgecc", "compile", "m.onnx", "--target", "host", "--backend", "onnxruntime",
                                           "--precision", "fp32", "--prune", "0.3", "--lowrank", "0.9",
                                           "-o", "onnxruntime-fp32-prune0.3-lowrank0.9"]


def test_a_wider_budget_recommends_the_fastest_and_a_zero_budget_only_lossless_rows():
    assert derive(budget=5.0)[4]["id"] == "openvino-int8-prune0.5-lowrankoff"
    assert derive(budget=0.0)[4]["id"] == "openvino-fp32-prune0-lowrankoff"


def test_the_baseline_failing_is_a_clear_error():
    with pytest.raises(BadInputError, match="baseline of the original model did not run"):
        derive_variants([Measured(GraphVariant(), [row("onnxruntime", "fp32", 1.0, None, status="failed")])], 1.0, "m", "host", CMD)


def test_flag_parsing():
    assert parse_prune("0, 0.3,0.5,0.3") == [None, 0.3, 0.5]
    assert parse_lowrank("off,0.95,1") == [None, 0.95, 1.0]
    assert parse_time_budget("30m") == 1800 and parse_time_budget("90s") == 90 and parse_time_budget("1.5h") == 5400
    assert parse_time_budget("0") == 0 and parse_time_budget("45") == 45
    for bad, fn, msg in [("1", parse_prune, "between 0 and 1"), ("-0.2", parse_prune, "between 0 and 1"),
                         ("0.3,x", parse_prune, "'x' is not a number"), ("1.5", parse_lowrank, "in (0, 1]"),
                         ("0", parse_lowrank, "in (0, 1]"), ("soon", parse_time_budget, "expected a duration"),
                         ("-5m", parse_time_budget, "expected a duration"), ("", parse_prune, "empty")]:
        with pytest.raises(BadInputError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
            fn(bad)


def test_grid_runs_the_original_first_then_mild_rewrites():
    keys = [v.key for v in grid({"prune": [0.5, None, 0.3], "lowrank": [None, 0.9]})]
    assert keys == ["prune0-lowrankoff", "prune0-lowrank0.9", "prune0.3-lowrankoff", "prune0.3-lowrank0.9",
                    "prune0.5-lowrankoff", "prune0.5-lowrank0.9"]
    assert grid({"prune": [0.5], "lowrank": [0.9]})[0] == GraphVariant()  # the baseline graph is always measured


def test_frontier_with_artifact_size_is_exact():
    from edgecc.search.results import size_front

    def v(vid, p50, drop, size, status="ok"):
        return {"id": vid, "status": status, "latency_ms": {"p50": p50}, "accuracy_drop": drop, "artifact_bytes": size}

    variants = [v("a", 10, 0, 100), v("b", 5, 1, 100), v("c", 5, 1, 50), v("d", 12, 0, 30), v("e", 12, 0, 40),
                v("f", 1, 0, None), v("g", 1, 0, 1, status="failed"), v("h", 4, None, 10)]
    # b is dominated by c (same latency and drop, smaller); e by d; f, g, h lack a size, status or drop.
    assert size_front(variants) == ["a", "c", "d"]
