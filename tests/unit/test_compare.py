"""compare / profile / compile through the API with onnxruntime and a really faulty test backend."""

from __future__ import annotations

import json

import pytest

from edgecc import api
from edgecc.artifact import MANIFEST, load_artifact
from edgecc.errors import ArtifactError, BadInputError, UnknownNameError, UnsupportedError

FAST = api.ProfileSettings(warmup=2, runs=5, min_time_s=0.0, layer_runs=2)
ROW_KEYS = {"backend", "precision", "status", "error", "latency_ms", "throughput_per_s", "speedup", "max_abs_error",
            "mean_abs_error", "cosine", "compile_s", "artifact_bytes"}


def test_compile_then_profile_again(tmp_path):
    art = api.compile("zoo:tinycnn", "host", tmp_path / "a", backend="onnxruntime")
    m = art.manifest
    assert (m.backend, m.precision, m.target.name, m.model.source) == ("onnxruntime", "fp32", "host", "zoo:tinycnn")
    assert set(m.files) == {"model.onnx", "reference.npz"} and len(m.model.sha256) == 64
    assert m.versions["onnxruntime"] and m.versions["edgecc"]
    assert [i.shape for i in m.inputs] == [[1, 3, 32, 32]] and m.options["graph_optimization_level"] == "all"
    row = api.profile(tmp_path / "a", FAST)
    assert row.status == "ok" and row.verified is True and row.max_abs_error < 1e-5 and row.cosine > 0.99999
    lat = row.latency_ms
    assert 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p99 and row.runs >= 5
    assert row.layers and all(l.time_ms > 0 for l in row.layers)
    assert {l.op_type for l in row.layers} >= {"Conv"}
    assert row.gflops_per_s and row.gflops_per_s > 0


def test_tampered_artifact_is_refused(tmp_path):
    api.compile("zoo:tinycnn", "host", tmp_path / "a", backend="onnxruntime")
    model = tmp_path / "a" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactError, match="checksum of model.onnx does not match"):
        api.profile(tmp_path / "a", FAST)
    (tmp_path / "a" / MANIFEST).write_text("{}")
    with pytest.raises(ArtifactError, match="invalid manifest"):
        load_artifact(tmp_path / "a")


def test_failed_compile_keeps_the_earlier_artifact(tmp_path, dynamic_mlp_path):
    out = tmp_path / "a"
    api.compile("zoo:tinycnn", "host", out, backend="onnxruntime")
    before = (out / MANIFEST).read_bytes()
    with pytest.raises(BadInputError):
        api.compile(dynamic_mlp_path, "host", out, backend="onnxruntime")
    assert (out / MANIFEST).read_bytes() == before


def test_failure_inside_a_build_leaves_nothing_behind(tmp_path):
    from edgecc.artifact import write_artifact

    out = tmp_path / "arts" / "a"
    api.compile("zoo:tinycnn", "host", out, backend="onnxruntime")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def build(staging):
        (staging / "half-written.bin").write_bytes(b"x" * 100)
        raise RuntimeError("compiler crashed")

    with pytest.raises(RuntimeError, match="compiler crashed"):
        write_artifact(out, build)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in (tmp_path / "arts").iterdir()] == ["a"]  # no staging directory left


def test_refuses_to_overwrite_a_non_artifact_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="not an edgecc artifact"):
        api.compile("zoo:tinycnn", "host", tmp_path / "mine", backend="onnxruntime")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_compile_rejections(tmp_path):
    with pytest.raises(UnsupportedError, match="cannot run bf16 on target host; it can: fp32"):
        api.compile("zoo:tinycnn", "host", tmp_path / "a", backend="onnxruntime", precision="bf16")
    with pytest.raises(UnsupportedError, match="target raspberry-pi-4 does not list backend openvino"):
        api.compile("zoo:tinycnn", "raspberry-pi-4", tmp_path / "a", backend="openvino")
    with pytest.raises(UnknownNameError, match="did you mean host"):
        api.compile("zoo:tinycnn", "hots", tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_compare_survives_a_crashing_backend(faulty_backend_installed, tmp_path):
    report = api.compare(
        "zoo:tinycnn", "host", backends=["onnxruntime", "faulty"], precisions=["fp32"],
        options={"faulty": {"fault": "abort"}}, settings=FAST, timeout_s=120,
    )
    rows = {(r.backend, r.precision): r for r in report.results}
    base, crashed = rows[("onnxruntime", "fp32")], rows[("faulty", "fp32")]
    assert base.status == "ok" and base.speedup == pytest.approx(1.0)
    assert crashed.status == "failed" and "SIGABRT" in crashed.error and crashed.latency_ms is None
    data = json.loads(report.model_dump_json())
    assert {"model", "target", "baseline", "results"} <= set(data)
    assert data["baseline"] == {"backend": "onnxruntime", "precision": "fp32"}
    assert all(ROW_KEYS <= set(r) for r in data["results"])
    assert set(data["results"][0]["latency_ms"]) == {"p50", "p90", "p99", "mean", "std", "min"}


def test_compare_stops_a_hanging_backend(faulty_backend_installed):
    report = api.compare(
        "zoo:tinycnn", "host", backends=["faulty"], precisions=["fp32"],
        options={"faulty": {"fault": "hang"}}, settings=FAST, timeout_s=20,
    )
    hung = [r for r in report.results if r.backend == "faulty"][0]
    assert hung.status == "failed" and "timed out after 20 s" in hung.error
    assert report.results[0].status == "ok"


def test_compare_speedup_is_the_ratio_of_p50s(faulty_backend_installed, tmp_path):
    report = api.compare(
        "zoo:tinycnn", "host", backends=["faulty"], precisions=["fp32", "bf16"], options={"faulty": {"fault": "none"}},
        settings=FAST, timeout_s=120, artifacts_dir=tmp_path / "arts",
    )
    base, faulty, bf16 = report.results
    assert faulty.status == "ok" and faulty.verified is True
    assert faulty.speedup == pytest.approx(base.latency_ms.p50 / faulty.latency_ms.p50)
    assert bf16.status == "unavailable" and "it can: fp32" in bf16.error
    assert (tmp_path / "arts" / "faulty-fp32" / MANIFEST).is_file()
    assert report.flops and report.flops > 1e6


def test_compare_stops_a_row_that_eats_memory(faulty_backend_installed):
    report = api.compare(
        "zoo:tinycnn", "host", backends=["faulty"], precisions=["fp32"], options={"faulty": {"fault": "oom"}},
        settings=FAST, timeout_s=120, memory_limit=1 * 2**30,
    )
    hog = [r for r in report.results if r.backend == "faulty"][0]
    assert hog.status == "failed" and "over the memory limit of 1.0 GiB" in hog.error
    assert report.results[0].status == "ok"


def test_vary_builds_a_row_per_option_value_and_the_deadline_stops_rows(faulty_backend_installed):
    """--vary: one faulty row per value, each carrying its value; the deadline cuts the hanging row short
    and the row after it is not started, while the baseline always runs."""
    import time

    start = time.monotonic()
    report = api.compare(
        "zoo:tinycnn", "host", backends=["faulty"], precisions=["fp32"], vary={"faulty": {"fault": ["hang", "none"]}},
        settings=FAST, timeout_s=600, deadline=time.monotonic() + 15,
    )
    base, hang, after = report.results
    assert base.status == "ok" and base.options is None and base.latency_ms is not None
    assert hang.options == {"fault": "hang"} and after.options == {"fault": "none"}
    assert hang.status == "failed" and hang.stopped_by_budget == "cut_short", hang.error
    assert hang.error.startswith("stopped: the time budget ran out after")
    assert after.status == "failed" and after.stopped_by_budget == "not_started", after.error
    assert after.error == "not run: the time budget was spent before this row started"
    assert time.monotonic() - start < 600  # stopped by the deadline, not by the row timeout
    assert hang.name == "faulty fault=hang"


def test_vary_without_deadline_measures_every_value(faulty_backend_installed):
    report = api.compare("zoo:tinycnn", "host", backends=["faulty"], precisions=["fp32"],
                         vary={"faulty": {"fault": ["none", "wrong"]}}, settings=FAST, timeout_s=120)
    base, ok, wrong = report.results
    assert ok.status == "ok" and ok.verified is True and ok.options == {"fault": "none"}
    assert wrong.options == {"fault": "wrong"} and wrong.verified is False


@pytest.mark.parametrize("vary, error, words", [
    ({"faulty": {"fault": ["none", "sideways"]}}, BadInputError, "faulty option fault"),
    ({"onnxruntime": {"graph_optimization_level": ["all", "max"]}}, BadInputError, "onnxruntime option graph_optimization_level"),
    ({"openvino": {"performance_hint": ["LATENCY"]}}, BadInputError, "--vary names openvino, which this run has no rows for"),
    ({"nosuch": {"x": [1]}}, UnknownNameError, "nosuch"),
    ({"faulty": {"fault": []}}, BadInputError, "--vary faulty: give KEY=VALUE1,VALUE2"),
])
def test_bad_vary_fails_before_any_row(faulty_backend_installed, vary, error, words):
    with pytest.raises(error, match=words):
        api.compare("zoo:tinycnn", "host", backends=["faulty"], precisions=["fp32"], vary=vary, settings=FAST)


def test_vary_of_an_int8_only_option_builds_other_precisions_once():
    """openvino.int8_quantizer=qdq,nncf: two INT8 rows, one FP32 row (the option does not apply to it)."""
    pytest.importorskip("openvino", reason='openvino is not installed (pip install "edgecc[openvino]")')
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random calibration: latency only
        report = api.compare("zoo:tinycnn", "host", backends=["openvino"], precisions=["fp32", "int8"], calibration="random",
                             vary={"openvino": {"int8_quantizer": ["qdq", "nncf"]}}, settings=FAST, timeout_s=300)
    rows = [(r.backend, r.precision, r.options) for r in report.results]
    assert rows == [("onnxruntime", "fp32", None), ("openvino", "fp32", {}), ("openvino", "int8", {"int8_quantizer": "qdq"}),
                    ("openvino", "int8", {"int8_quantizer": "nncf"})]
    assert all(r.status == "ok" for r in report.results), [r.error for r in report.results]
