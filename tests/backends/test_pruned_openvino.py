"""A pruned model is an ordinary smaller ONNX model: OpenVINO compiles it and matches onnxruntime on it."""

from __future__ import annotations

import pytest

pytest.importorskip("openvino", reason="openvino is not installed (pip install \"edgecc[openvino]\")")

from edgecc import api  # noqa: E402
from edgecc.graph.analysis import analyze  # noqa: E402
from edgecc.graph.io import prepare_model  # noqa: E402

pytestmark = pytest.mark.openvino


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_pruned_model_runs_on_openvino_and_matches_onnxruntime(name, tmp_path):
    artifact = api.compile(f"zoo:{name}", "host", tmp_path / "art", backend="openvino", prune=0.5, optimize=True)
    assert artifact.manifest.model.flops < 0.5 * analyze(prepare_model(f"zoo:{name}").model).flops
    row = api.profile(tmp_path / "art", api.ProfileSettings(warmup=1, runs=3, min_time_s=0, layer_runs=0), isolate=False)
    assert row.status == "ok" and row.verified and row.cosine >= 0.99999
