"""The HTML report, rendered by a real browser (Debian's chromium, headless): what a person sees."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from edgecc import api
from edgecc.report.html import render_compare, write_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    report = api.compare(
        "zoo:tinycnn", "host", backends=["onnxruntime"], settings=api.ProfileSettings(warmup=1, runs=5, min_time_s=0, layer_runs=3)
    )
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_html(path, render_compare(report))
    return path, report


def _chromium(tmp_path, *args):
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_browser_renders_tables_and_plots(report_file, tmp_path):
    path, report = report_file
    dom = _chromium(tmp_path, "--dump-dom", path.as_uri())
    assert "<h1>zoo:tinycnn on host</h1>" in dom
    assert dom.count("<svg") == 4  # latency, pareto, roofline, slowest layers
    for figure in ("latency", "pareto", "roofline", "layers"):
        assert f'id="{figure}"' in dom
    base = report.results[0]
    assert f"{base.latency_ms.p50:.3f}" in dom and "1.00x" in dom
    # Nothing is fetched at view time: no scripts, no stylesheets or images from elsewhere.
    assert "<script" not in dom and "<link" not in dom and "<img" not in dom
    assert 'src="http' not in dom and 'href="http' not in dom


def test_screenshot_is_a_real_picture(report_file, tmp_path):
    path, _ = report_file
    png = tmp_path / "shot.png"
    _chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={png}", path.as_uri())
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1600) and len(data) > 20_000

