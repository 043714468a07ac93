"""Interrupted and concurrent work loses nothing: artifacts, caches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from edgecc import api
from edgecc.artifact import MANIFEST, load_artifact


def _edgecc(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "edgecc", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_killed_compile_keeps_the_earlier_artifact(tmp_path):
    out = tmp_path / "art"
    api.compile("zoo:tinycnn", "host", out, backend="onnxruntime")
    before = (out / MANIFEST).read_text()
    # resnet50 takes seconds to build and write: kill it mid-way, as a power cut or OOM kill would.
    proc = _edgecc("compile", "zoo:resnet50", "-t", "host", "-b", "onnxruntime", "-o", out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob(".art.*.partial")):
        time.sleep(0.02)
    assert list(tmp_path.glob(".art.*.partial")), "the compile never reached its staging step"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / MANIFEST).read_text() == before
    assert load_artifact(out).manifest.model.source == "zoo:tinycnn"  # checksums still verify
    # The next compile clears what the killed one left behind.
    api.compile("zoo:tinycnn", "host", out, backend="onnxruntime")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_two_processes_compiling_to_one_directory(tmp_path):
    out = tmp_path / "art"
    procs = [_edgecc("compile", f"zoo:{m}", "-t", "host", "-b", "onnxruntime", "-o", out) for m in ("tinycnn", "mobilenetv2")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    art = load_artifact(out)  # whole and verified: one of the two, not a mix
    assert art.manifest.model.source in ("zoo:tinycnn", "zoo:mobilenetv2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


@pytest.mark.openvino
def test_corrupt_openvino_cache_entry_is_rebuilt_not_used(tmp_path):
    pytest.importorskip("openvino", reason="openvino is not installed")
    from edgecc.cache import cache_dir

    out = tmp_path / "art"
    api.compile("zoo:tinycnn", "host", out, backend="openvino")
    settings = api.ProfileSettings(warmup=1, runs=3, min_time_s=0, layer_runs=0)
    assert api.profile(out, settings).verified is True
    blobs = list(cache_dir("openvino").glob("*.blob"))
    assert blobs, "OpenVINO wrote no compiled-model cache"
    sizes = {b: b.stat().st_size for b in blobs}
    for b in blobs:  # flip bytes all through the compiled model, then cut it short
        os.chmod(b, 0o644)
        data = bytearray(b.read_bytes())
        for i in range(64, len(data), 101):
            data[i] ^= 0xFF
        b.write_bytes(bytes(data[: len(data) // 2]))
    row = api.profile(out, settings)
    assert row.status == "ok" and row.verified is True and row.max_abs_error < 1e-4
    assert {b: b.stat().st_size for b in blobs} == sizes  # OpenVINO rebuilt each entry whole


def test_ctrl_c_during_compare_stops_cleanly(tmp_path):
    import psutil

    out = tmp_path / "r.json"
    proc = _edgecc("compare", "zoo:resnet50", "-t", "host", "--backends", "onnxruntime", "--runs", "1000",
                   "--min-time", "60", "--json", out)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    children = []
    while time.monotonic() < deadline and not children:
        children = [c for c in parent.children(recursive=True) if "edgecc.isolation" in " ".join(c.cmdline())]
        time.sleep(0.1)
    assert children, "compare never started a row"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not out.exists()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, "a row's process outlived the interrupted compare"
