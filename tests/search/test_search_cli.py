"""edgecc search end to end on the bundled MNIST CNN with onnxruntime: budget, resumption, the rebuild command,
bad flags, and edgecc report on a saved search."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecc import api
from edgecc.artifact import load_artifact
from edgecc.cli import app

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
MODEL, EVAL = str(DATA / "mnist_cnn.onnx"), str(DATA / "mnist_eval.npz")
FAST = ["--warmup", "1", "--runs", "3", "--min-time", "0", "--layer-runs", "1"]
runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def compare_calls(monkeypatch):
    """Counts the graph variants really measured (comparator runs), calling the real comparator."""
    import edgecc.search.run

    calls: list[tuple] = []
    real = edgecc.search.run.run_compare

    def counting(request, on_row=None):
        calls.append((request.graph.prune, request.graph.lowrank))
        return real(request, on_row)

    monkeypatch.setattr(edgecc.search.run, "run_compare", counting)
    return calls


def search(json_path, *extra):
    return run("search", MODEL, "--target", "host", "--backends", "onnxruntime", "--precisions", "fp32", "--eval", EVAL,
               "--prune", "0,0.5", "--max-accuracy-drop", "1", "--json", json_path, *FAST, *extra)


@pytest.fixture(scope="module")
def saved_search(tmp_path_factory):
    """One real search (original + prune 0.5), shared by the tests below that only read it."""
    tmp = tmp_path_factory.mktemp("search")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGECC_CACHE_DIR", str(tmp / "cache"))
        mp.setenv("XDG_CACHE_HOME", str(tmp / "xdg"))
        code, stdout, stderr = search(tmp / "r.json", "--html", tmp / "r.html")
    assert code == 0, stderr
    return tmp, json.loads((tmp / "r.json").read_text()), stdout


def test_search_json_shape_and_accuracy_against_the_original(saved_search):
    _, data, stdout = saved_search
    assert {"model", "target", "baseline", "variants", "pareto", "recommended"} <= data.keys()
    ids = [v["id"] for v in data["variants"]]
    assert ids == ["onnxruntime-fp32-prune0-lowrankoff", "onnxruntime-fp32-prune0.5-lowrankoff"]
    base, pruned = data["variants"]
    assert data["baseline"]["id"] == ids[0] and data["accuracy_metric"] == "top1"
    assert base["accuracy"] == data["baseline"]["accuracy"] and base["accuracy_drop"] == 0.0 and base["eval_samples"] == 1000
    assert pruned["prune"] == 0.5 and pruned["lowrank"] is None
    assert pruned["accuracy_drop"] == pytest.approx(base["accuracy"] - pruned["accuracy"], abs=1e-9)
    # Agreement is measured against the ORIGINAL model, so the pruned model's own onnxruntime row is below 100%.
    assert base["agreement"] == 100.0 and pruned["agreement"] < 100.0
    assert pruned["within_accuracy_budget"] == (pruned["accuracy_drop"] <= 1.0)
    assert set(data["pareto"]) <= set(ids) and data["pareto"]
    assert set(data["pareto_with_size"]) <= set(ids) and data["pareto_with_size"]
    assert all(v["artifact_bytes"] > 0 for v in data["variants"])
    rec = data["recommended"]
    assert rec["within_accuracy_budget"] is True
    eligible = [v for v in data["variants"] if v["within_accuracy_budget"]]
    assert rec["id"] == min(eligible, key=lambda v: v["latency_ms"]["p50"])["id"]
    assert f"recommended: {rec['id']}" in stdout and rec["command"] in " ".join(stdout.split())


def test_recommended_command_rebuilds_the_variant_with_the_real_cli(saved_search, tmp_path):
    _, data, _ = saved_search
    # Whatever was fastest here, rebuild the pruned variant too: its command must carry --prune.
    pruned = dict(data["variants"][1])
    from edgecc.search import compile_command

    for variant in (data["recommended"], pruned):
        args = shlex.split(variant.get("command") or compile_command(data["model"], data["target"], variant))
        assert args[:3] == ["edgecc", "compile", MODEL]
        out = tmp_path / variant["id"]
        args[args.index("-o") + 1] = str(out)
        code, _, stderr = run(*args[1:])
        assert code == 0, stderr
        art = load_artifact(out)
        assert (art.manifest.backend, art.manifest.precision) == (variant["backend"], variant["precision"])
        if variant["prune"] is not None:
            assert any(p.startswith(f"prune(ratio={variant['prune']:g}") for p in art.manifest.passes)
        # The rebuilt artifact has the accuracy the search measured for that variant.
        assert api.evaluate(out, EVAL).top1 == pytest.approx(variant["accuracy"], abs=1e-9)


def test_resuming_a_saved_run_measures_nothing_again(saved_search, compare_calls, tmp_path):
    tmp, data, _ = saved_search
    path = tmp_path / "again.json"
    path.write_text((tmp / "r.json").read_text())
    code, stdout, stderr = search(path)
    assert code == 0, stderr
    assert compare_calls == []
    again = json.loads(path.read_text())
    assert [v["id"] for v in again["variants"]] == [v["id"] for v in data["variants"]]
    assert again["recommended"]["id"] == data["recommended"]["id"]
    assert "2 graph variant(s) taken from the earlier run" in " ".join(stderr.split())
    # A wider grid measures only the new graph variant.
    code, _, stderr = search(path, "--lowrank", "off,0.9")
    assert code == 0, stderr
    assert compare_calls == [(None, 0.9), (0.5, 0.9)]
    assert len(json.loads(path.read_text())["variants"]) == 4


def test_time_budget_zero_measures_only_the_baseline(compare_calls, tmp_path):
    code, stdout, stderr = search(tmp_path / "r.json", "--time-budget", "0")
    assert code == 0, stderr
    assert compare_calls == [(None, None)]
    data = json.loads((tmp_path / "r.json").read_text())
    assert [v["id"] for v in data["variants"]] == ["onnxruntime-fp32-prune0-lowrankoff"]
    assert data["not_run"] == ["prune0.5-lowrankoff"] and data["recommended"]["id"] == "onnxruntime-fp32-prune0-lowrankoff"
    assert "time budget of 0 s spent: 1 of 2 graph variants not measured (prune0.5-lowrankoff)" in " ".join(stderr.split())


def test_time_budget_zero_on_a_saved_run_keeps_what_was_measured(saved_search, compare_calls, tmp_path):
    tmp, data, _ = saved_search
    path = tmp_path / "r.json"
    path.write_text((tmp / "r.json").read_text())
    code, _, stderr = search(path, "--lowrank", "off,0.9", "--time-budget", "0s")
    assert code == 0, stderr
    assert compare_calls == []
    again = json.loads(path.read_text())
    assert again["not_run"] == ["prune0-lowrank0.9", "prune0.5-lowrank0.9"]
    assert again["recommended"]["id"] == data["recommended"]["id"]


@pytest.mark.parametrize("flags, message", [
    (["--prune", "0,1.2"], "--prune: every ratio must be 0 (off) or between 0 and 1"),
    (["--prune", "0,-0.3"], "--prune: every ratio must be 0 (off) or between 0 and 1"),
    (["--lowrank", "off,2"], "--lowrank: every energy must be 'off' or in (0, 1]"),
    (["--time-budget", "tomorrow"], "--time-budget 'tomorrow': expected a duration"),
    (["--max-accuracy-drop", "-1"], "--max-accuracy-drop must be >= 0"),
])
def test_bad_flags_exit_2_before_anything_runs(flags, message, compare_calls, tmp_path):
    code, _, stderr = search(tmp_path / "r.json", *flags)
    assert code == 2 and "Traceback" not in stderr
    assert message in " ".join(stderr.split())
    assert compare_calls == [] and not (tmp_path / "r.json").exists()


def test_a_saved_search_of_another_model_is_not_overwritten(saved_search, compare_calls, tmp_path):
    tmp, _, _ = saved_search
    path = tmp_path / "r.json"
    text = (tmp / "r.json").read_text().replace(MODEL, "other.onnx")
    path.write_text(text)
    code, _, stderr = search(path)
    assert code == 2 and "holds a search of other.onnx" in " ".join(stderr.split())
    assert path.read_text() == text and compare_calls == []


def test_report_renders_a_saved_search(saved_search, tmp_path):
    tmp, data, _ = saved_search
    code, stdout, stderr = run("report", tmp / "r.json", "--html", tmp_path / "again.html")
    assert code == 0, stderr
    page = (tmp_path / "again.html").read_text()
    rec = data["recommended"]["id"]
    assert f"Recommended: <b>{rec}</b>" in page and f"{rec} <b class='rec'>(recommended)</b>" in page
    assert page.count("<svg") >= 3 and "onnxruntime-fp32-prune0.5-lowrankoff" in page
    code, stdout, _ = run("report", tmp / "r.json")
    assert code == 0 and "onnxruntime-fp32-prune0.5-lowrankoff" in stdout and f"{rec} *" in stdout


def test_an_interrupted_search_is_saved_after_each_graph_variant_and_resumes(monkeypatch, tmp_path):
    import edgecc.search.run

    calls: list[tuple] = []
    real = edgecc.search.run.run_compare

    def interrupted_on_the_second(request, on_row=None):
        calls.append((request.graph.prune, request.graph.lowrank))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(request, on_row)

    monkeypatch.setattr(edgecc.search.run, "run_compare", interrupted_on_the_second)
    path = tmp_path / "r.json"
    code, _, stderr = search(path)
    assert code == 130 and "interrupted" in stderr
    saved = json.loads(path.read_text())
    assert [v["id"] for v in saved["variants"]] == ["onnxruntime-fp32-prune0-lowrankoff"]
    calls.clear()
    monkeypatch.setattr(api, "compare", lambda *a, **k: (calls.append((k.get("prune"), k.get("lowrank"))), real(*a, **k))[1])
    code, _, stderr = search(path)
    assert code == 0, stderr
    assert calls == [(0.5, None)]  # only what the interrupted run had not measured
    assert len(json.loads(path.read_text())["variants"]) == 2


def test_report_on_a_damaged_search_file_exits_2(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"kind": "edgecc-search", "model": "m", "target": "host"}))
    code, _, stderr = run("report", path)
    assert code == 2 and "Traceback" not in stderr and "not a saved edgecc search" in " ".join(stderr.split())


def test_vary_makes_backend_options_variants_with_their_rebuild_command(compare_calls, tmp_path):
    """--vary onnxruntime.graph_optimization_level=all,basic: one variant per value, ids and commands carry it,
    and the command rebuilds an artifact compiled with that value. A run without --vary does not resume it."""
    path = tmp_path / "r.json"
    code, _, stderr = run("search", MODEL, "--target", "host", "--backends", "onnxruntime", "--precisions", "fp32",
                          "--eval", EVAL, "--prune", "0", "--json", path, *FAST,
                          "--vary", "onnxruntime.graph_optimization_level=all,basic")
    assert code == 0, stderr
    data = json.loads(path.read_text())
    ids = [v["id"] for v in data["variants"]]
    assert ids == ["onnxruntime-fp32-prune0-lowrankoff-graph_optimization_level=all",
                   "onnxruntime-fp32-prune0-lowrankoff-graph_optimization_level=basic"]
    assert [v["options"] for v in data["variants"]] == [{"graph_optimization_level": "all"}, {"graph_optimization_level": "basic"}]
    assert data["baseline"]["id"] == ids[0] and data["request"]["vary"] == {"onnxruntime": {"graph_optimization_level": ["all", "basic"]}}
    # the same accuracy: the optimisation level does not change what the model computes
    assert data["variants"][1]["accuracy_drop"] == 0.0
    from edgecc.search import compile_command

    args = shlex.split(compile_command(data["model"], data["target"], data["variants"][1], output=str(tmp_path / "basic")))
    assert args[args.index("--option") + 1] == "graph_optimization_level=basic"
    code, _, stderr = run(*args[1:])
    assert code == 0, stderr
    assert load_artifact(tmp_path / "basic").manifest.options["graph_optimization_level"] == "basic"
    # another request (no --vary): the saved variants do not answer it, so it is measured again
    compare_calls.clear()
    code, _, stderr = run("search", MODEL, "--target", "host", "--backends", "onnxruntime", "--precisions", "fp32",
                          "--eval", EVAL, "--prune", "0", "--json", path, *FAST)
    assert code == 0 and compare_calls == [(None, None)], stderr


@pytest.mark.parametrize("flag, message", [
    ("onnxruntime.graph_optimization_level", "malformed --vary 'onnxruntime.graph_optimization_level'"),
    ("graph_optimization_level=all,basic", "malformed --vary"),
    ("onnxruntime.graph_optimization_level=all,fastest", "onnxruntime option graph_optimization_level"),
    ("openvino.performance_hint=LATENCY,THROUGHPUT", "--vary names openvino, which this run has no rows for"),
])
def test_bad_vary_exits_2_before_anything_runs(flag, message, tmp_path):
    code, _, stderr = search(tmp_path / "r.json", "--vary", flag)
    assert code == 2 and "Traceback" not in stderr
    assert message in " ".join(stderr.split())
    assert not (tmp_path / "r.json").exists()


def test_time_budget_cuts_a_row_short_and_says_so(faulty_backend_installed, tmp_path):
    """A row that would run for an hour is stopped when the search's budget runs out, with the search's
    baseline and the other rows kept; the message names the row."""
    import time

    import numpy as np

    from edgecc.search import search as run_search

    data = tmp_path / "eval.npz"
    np.savez(data, input=np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32))
    start = time.monotonic()
    result = run_search("zoo:tinycnn", "host", eval_data=str(data), backends=["onnxruntime", "faulty"], precisions=["fp32"],
                        vary={"faulty": {"fault": ["none", "hang"]}}, time_budget_s=30, timeout_s=3600,
                        settings=api.ProfileSettings(warmup=1, runs=3, min_time_s=0.0, layer_runs=0))
    assert time.monotonic() - start < 600
    rows = {v["id"]: v for v in result.variants}
    assert rows["onnxruntime-fp32-prune0-lowrankoff"]["status"] == "ok"
    assert rows["faulty-fp32-prune0-lowrankoff-fault=none"]["status"] == "ok"
    hung = rows["faulty-fp32-prune0-lowrankoff-fault=hang"]
    assert hung["status"] == "failed" and hung["stopped_by_budget"] == "cut_short" and hung["error"].startswith("stopped: the time budget")
    assert any("faulty-fp32-prune0-lowrankoff-fault=hang" in m and "time budget of 30 s spent" in m for m in result.messages)
    assert result.recommended is not None and result.recommended["id"] != hung["id"]


def test_optuna_strategy_measures_distinct_variants_and_a_resumed_run_adds_only_new_ones(compare_calls, tmp_path):
    pytest.importorskip("optuna", reason='optuna is not installed (pip install "edgecc[search]")')
    path = tmp_path / "r.json"
    flags = ["--prune", "0:0.6", "--strategy", "optuna"]
    code, _, stderr = search(path, *flags, "--max-variants", "3")
    assert code == 0, stderr
    first = json.loads(path.read_text())
    graphs = [(g["prune"], g["lowrank"]) for g in first["graph_variants"]]
    assert len(graphs) == len(set(graphs)) == 3 == len(compare_calls) and graphs[0] == (None, None)
    assert all(p is None or 0 < p <= 0.6 for p, _ in graphs)
    compare_calls.clear()
    code, _, stderr = search(path, *flags, "--max-variants", "5")
    assert code == 0, stderr
    again = json.loads(path.read_text())
    assert [(g["prune"], g["lowrank"]) for g in again["graph_variants"]][:3] == graphs
    assert len(again["graph_variants"]) == 5 and len(compare_calls) == 2
    assert not set(compare_calls) & set(graphs)
    assert "3 graph variant(s) taken from the earlier run" in " ".join(stderr.split())


@pytest.mark.parametrize("flags, message", [
    (["--prune", "0:0.6"], "a range is searched by --strategy optuna"),
    (["--prune", "0.6:0.1", "--strategy", "optuna"], "0 <= LOW < HIGH < 1"),
    (["--strategy", "bayes"], "--strategy 'bayes': grid or optuna"),
    (["--strategy", "optuna", "--max-variants", "0"], "--max-variants must be >= 1"),
])
def test_bad_strategy_flags_exit_2_before_anything_runs(flags, message, compare_calls, tmp_path):
    code, _, stderr = search(tmp_path / "r.json", *flags)
    assert code == 2 and "Traceback" not in stderr and message in " ".join(stderr.split())
    assert compare_calls == [] and not (tmp_path / "r.json").exists()
