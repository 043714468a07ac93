"""The search report, rendered by headless chromium: variants by id, the recommended one, the plots."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgecc import api
from edgecc.report.html import write_html
from edgecc.report.search_html import render_search
from edgecc.search import search

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def test_browser_renders_the_search_report(tmp_path):
    result = search(str(DATA / "mnist_cnn.onnx"), "host", eval_data=str(DATA / "mnist_eval.npz"), backends=["onnxruntime"],
                    precisions=["fp32"], prune=[None, 0.5], max_accuracy_drop=30.0,
                    settings=api.ProfileSettings(warmup=1, runs=3, min_time_s=0, layer_runs=2))
    data = result.to_json()
    path = tmp_path / "search.html"
    write_html(path, render_search(data))
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    rec = data["recommended"]
    assert f"<h1>Search: {DATA / 'mnist_cnn.onnx'} on host</h1>" in dom
    assert f"Recommended: <b>{rec['id']}</b>" in dom and f"{rec['speedup']:.2f}x the baseline" in dom
    assert dom.count("<tr>") == 1 + 2  # header + both variants
    for figure in ("latency", "pareto", "size", "roofline", "layers"):
        assert f'id="{figure}"' in dom
    assert dom.count("<svg") == 5
    rows = dom.split('<table id="variants">', 1)[1].split("</table>", 1)[0]
    for v in data["variants"]:  # each variant's latency and size, as the table shows them
        assert f"{v['latency_ms']['p50']:.3f}" in rows and f"{v['artifact_bytes'] / 2**20:.2f}" in rows
    assert "<script" not in dom and "<link" not in dom and 'src="http' not in dom
