from __future__ import annotations

import json

from typer.testing import CliRunner

from edgecc.cli import app

runner = CliRunner()


def test_compare_writes_html_and_report_rerenders_it(tmp_path):
    res = runner.invoke(app, ["compare", "zoo:tinycnn", "-t", "host", "--backends", "onnxruntime", "--runs", "3",
                              "--min-time", "0", "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.stderr
    first = (tmp_path / "r.html").read_text()
    assert "<h1>zoo:tinycnn on host</h1>" in first and first.count("<svg") >= 2
    res = runner.invoke(app, ["report", str(tmp_path / "r.json"), "--html", str(tmp_path / "again.html")])
    again = (tmp_path / "again.html").read_text()
    assert res.exit_code == 0 and again.count("<svg") == first.count("<svg")
    p50 = json.loads((tmp_path / "r.json").read_text())["results"][0]["latency_ms"]["p50"]
    assert f"{p50:.3f}" in again


def test_report_of_a_bad_file_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "m"}')
    res = runner.invoke(app, ["report", str(bad), "--html", str(tmp_path / "x.html")])
    assert res.exit_code == 2 and "not a saved edgecc comparison" in res.stderr and "bad.json" in res.stderr
    assert not (tmp_path / "x.html").exists()
    res = runner.invoke(app, ["report", str(tmp_path / "missing.json")])
    assert res.exit_code == 2 and "cannot read" in res.stderr
