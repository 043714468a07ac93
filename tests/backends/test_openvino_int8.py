"""OpenVINO INT8: edgecc's QDQ models and NNCF's own path run with INT8 kernels, match onnxruntime's INT8,
and keep the real MNIST CNN's accuracy within a point of FP32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino", reason="openvino is not installed (pip install \"edgecc[openvino]\")")

from edgecc import api  # noqa: E402
from edgecc.artifact import load_artifact  # noqa: E402
from edgecc.backends import get_backend  # noqa: E402
from edgecc.data import load_dataset  # noqa: E402
from edgecc.errors import BadInputError, UnsupportedError  # noqa: E402
from edgecc.targets import load_registry  # noqa: E402

pytestmark = pytest.mark.openvino

MNIST = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
MODEL, CALIB, EVAL = MNIST / "mnist_cnn.onnx", MNIST / "mnist_calib.npz", MNIST / "mnist_eval.npz"
QUICK = api.ProfileSettings(warmup=1, runs=3, min_time_s=0.0, layer_runs=0)


def _int8_ops(artifact_dir) -> int:
    with get_backend("openvino").open_runner(load_artifact(artifact_dir)) as runner:
        counts = runner.runtime_precisions()
    return counts.get("i8", 0) + counts.get("u8", 0)


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    cal = str(CALIB)
    return {
        "fp32": api.compile(MODEL, "host", d / "fp32", backend="openvino"),
        "qdq": api.compile(MODEL, "host", d / "qdq", backend="openvino", precision="int8", calibration=cal),
        "nncf": api.compile(MODEL, "host", d / "nncf", backend="openvino", precision="int8", calibration=cal,
                            options={"int8_quantizer": "nncf"}),
        "ort": api.compile(MODEL, "host", d / "ort", backend="onnxruntime", precision="int8", calibration=cal),
    }


def test_qdq_and_nncf_artifacts_run_int8_kernels(arts):
    assert "quantize-qdq" in arts["qdq"].manifest.passes and "nncf-quantize" not in arts["qdq"].manifest.passes
    assert "nncf-quantize" in arts["nncf"].manifest.passes and "quantize-qdq" not in arts["nncf"].manifest.passes
    assert any(n.startswith("NNCF ") and "on 100 samples" in n for n in arts["nncf"].manifest.notes)
    assert _int8_ops(arts["fp32"].path) == 0
    assert _int8_ops(arts["qdq"].path) >= 4 and _int8_ops(arts["nncf"].path) >= 4  # 2 convs + 2 matmuls, in and weights


def test_openvino_runs_the_qdq_model_as_onnxruntime_does(arts):
    ds = load_dataset(str(EVAL), arts["qdq"].inputs)
    outs = {}
    for key in ("qdq", "ort"):
        art = arts[key]
        with get_backend(art.manifest.backend).open_runner(art) as r:
            outs[key] = np.concatenate([r.run(b)["logits"] for b in ds.batches[:200]])
    a, b = outs["qdq"].ravel(), outs["ort"].ravel()
    assert float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) > 0.999
    assert np.mean(outs["qdq"].argmax(1) == outs["ort"].argmax(1)) >= 0.99


def test_int8_rows_verify_against_the_reference(arts):
    for key in ("qdq", "nncf"):
        row = api.profile(arts[key].path, QUICK, isolate=False)
        assert row.status == "ok" and row.verified is True and row.cosine > 0.99, row.error


def test_mnist_int8_accuracy_is_within_a_point_of_fp32_on_every_path(arts):
    fp32 = api.evaluate(arts["fp32"].path, str(EVAL))
    assert fp32.samples == 1000 and fp32.top1 > 95.0 and fp32.agreement == 100.0
    for key in ("qdq", "nncf", "ort"):
        res = api.evaluate(arts[key].path, str(EVAL))
        assert abs(fp32.top1 - res.top1) <= 1.0, (key, res)
        assert res.agreement >= 98.0, (key, res)


def test_precision_errors_name_what_openvino_can(tmp_path):
    backend = get_backend("openvino")
    with pytest.raises(UnsupportedError, match="cannot run fp16 on target intel-core-avx2; it can: fp32, int8$"):
        backend.check_precision(load_registry().get("intel-core-avx2"), "fp16")
    with pytest.raises(BadInputError, match="int8_quantizer: Input should be 'qdq' or 'nncf'"):
        api.compile(MODEL, "host", tmp_path / "x", backend="openvino", precision="int8", calibration=str(CALIB),
                    options={"int8_quantizer": "pot"})
    assert not (tmp_path / "x").exists()
