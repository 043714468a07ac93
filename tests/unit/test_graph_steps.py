"""compile/compare with --prune, --lowrank, --optimize: the rewrites run first and are recorded in the manifest."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgecc import api
from edgecc.cli import app
from edgecc.errors import BadInputError
from edgecc.graph.analysis import analyze
from edgecc.graph.io import prepare_model


def test_compile_with_prune_and_optimize_records_passes(tmp_path):
    artifact = api.compile("zoo:tinycnn", "host", tmp_path / "art", backend="onnxruntime", prune=0.5, optimize=True)
    m = artifact.manifest
    assert m.passes[:2] == ["fix-input-shapes", "shape-inference"]
    assert m.passes[2].startswith("prune(ratio=0.5,criterion=l1,round-to=8,removed=")
    assert m.passes[3].startswith("optimize(nodes=")
    assert m.model.flops < 0.5 * analyze(prepare_model("zoo:tinycnn").model).flops
    assert any("outputs vs the original model" in n for n in m.notes)
    row = api.profile(tmp_path / "art", api.ProfileSettings(warmup=1, runs=3, min_time_s=0, layer_runs=0), isolate=False)
    assert row.status == "ok" and row.verified


def test_compare_with_lowrank_and_bad_values(tmp_path):
    report = api.compare(
        "zoo:tinycnn", "host", backends=["onnxruntime"], lowrank=0.5,
        settings=api.ProfileSettings(warmup=1, runs=3, min_time_s=0, layer_runs=0), artifacts_dir=tmp_path / "arts",
    )
    assert [r.status for r in report.results] == ["ok"]
    manifest = json.loads((tmp_path / "arts" / "onnxruntime-fp32" / "manifest.json").read_text())
    assert any(p.startswith("lowrank(energy=0.5,") for p in manifest["passes"])
    with pytest.raises(BadInputError, match="--lowrank must be in"):
        api.compare("zoo:tinycnn", "host", lowrank=0.0)
    r = CliRunner().invoke(app, ["compile", "zoo:tinycnn", "-t", "host", "-o", str(tmp_path / "x"), "--prune", "1"])
    assert r.exit_code == 2 and "--prune must be between 0 and 1" in r.stderr and not (tmp_path / "x").exists()



def test_prune_step_keeps_large_groups_a_multiple_of_8(tmp_path):
    """--prune 0.3 on ResNet-18 (every group has 64+ channels): each convolution keeps a multiple of 8 output
    channels (the kernels' block size), and about 0.3 of the channels still go."""
    import onnx
    from onnx import numpy_helper

    original = [v.shape[0] for v in prepare_model("zoo:resnet18").model.graph.initializers.values() if len(v.shape) == 4]
    art = api.compile("zoo:resnet18", "host", tmp_path / "art", backend="onnxruntime", prune=0.3)
    kept = [numpy_helper.to_array(t).shape[0] for t in onnx.load(art.path / "model.onnx").graph.initializer if len(t.dims) == 4]
    assert len(kept) == len(original) and all(k % 8 == 0 for k in kept), kept
    assert 0.62 < sum(kept) / sum(original) < 0.78
