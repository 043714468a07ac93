"""``edgecc prune`` with least-squares recovery (the default with --calibration), --no-recover, --steps and
--finetune, through the CLI, on the bundled trained MNIST CNN and its calibration digits: recovery leaves the
pruned model closer to the original on those digits than mean compensation; --no-recover writes exactly what
mean-compensated pruning writes; bad combinations are one clear message with exit code 2; the report carries
the recovery's per-layer figures and the fine-tuning's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from edgecc.cli import app

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
MODEL, CALIB = DATA / "mnist_cnn.onnx", DATA / "mnist_calib.npz"  # 200 digits; recovery measures on the first 100
HAVE_TRAIN = all(importlib.util.find_spec(m) is not None for m in ("torch", "onnx2torch"))

runner = CliRunner()


def _prune(tmp_path: Path, name: str, *extra: str) -> tuple[object, dict]:
    out, report = tmp_path / f"{name}.onnx", tmp_path / f"{name}.json"
    r = runner.invoke(app, ["prune", str(MODEL), "-o", str(out), "--ratio", "0.5", "--calibration", str(CALIB),
                            "--report", str(report), *extra])
    assert r.exit_code == 0, r.stderr
    return r, json.loads(report.read_text())


def _outputs(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def _relative_error(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - ref) / np.linalg.norm(ref.astype(np.float64)))


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """{"recovered" | "compensated": (CLI result, report)}, the two files beside them. Both cut every group by the
    ratio (--allocation uniform; the default with --calibration chooses counts per group), so they differ only
    in what happens to the layers reading the removed channels."""
    tmp = tmp_path_factory.mktemp("prune-cli")
    return tmp, {"recovered": _prune(tmp, "recovered", "--allocation", "uniform"),
                 "compensated": _prune(tmp, "compensated", "--no-recover")}


def test_recovery_leaves_the_pruned_model_closer_to_the_original_on_the_calibration_digits(pruned):
    tmp, runs = pruned
    x = np.load(CALIB)["pixels"][:100].astype(np.float32)
    ref = _outputs(MODEL, x)
    errors = {name: _relative_error(_outputs(tmp / f"{name}.onnx", x), ref) for name in runs}
    assert errors["recovered"] < 0.5 * errors["compensated"], errors  # measured 0.054 vs 0.365
    # the same channels went: both files have the one-shot plan's FLOPs
    assert runs["recovered"][1]["after"] == runs["compensated"][1]["after"]
    assert runs["recovered"][1]["after"]["flops"] < 0.55 * runs["recovered"][1]["before"]["flops"]


def test_the_report_and_the_summary_carry_the_recovery(pruned):
    _, runs = pruned
    (r, data), (r_off, data_off) = runs["recovered"], runs["compensated"]
    assert data["how"] == "least-squares recovery, 1 step" and data["finetune"] is None
    [step] = data["recovery"]
    assert step["samples"] == 100 and step["kept"] > 0 and len(step["layers"]) == 2
    assert all(lr["error_after"] < lr["error_before"] for lr in step["layers"]), step["layers"]
    assert "least-squares recovery, 1 step: 2 layers re-fitted on 100 samples, mean relative output error per layer" in r.stdout
    assert (data_off["how"], data_off["recovery"], data_off["finetune"]) == ("mean-compensated", None, None)
    assert "mean-compensated: removed channels' means folded into the next layers' biases" in r_off.stdout
    assert {"model", "output", "plan", "before", "after", "output_error"} <= set(data) == set(data_off)


def test_no_recover_writes_exactly_what_mean_compensated_pruning_writes(pruned):
    """The reference is the pruning --no-recover stands for, done step by step: shapes folded, channels ranked by
    activation on the first 100 calibration digits, their means folded into the next biases, saved as edgecc saves."""
    from edgecc.data import DataSpec, load_dataset
    from edgecc.graph.io import prepare_model
    from edgecc.graph.passes import fold_shape_computations
    from edgecc.graph.prune import build_dependency_graph, materialise, plan_pruning
    from edgecc.graph.prune.compensate import measure
    from edgecc.transform import write_model

    tmp, _ = pruned
    prepared = prepare_model(str(MODEL))
    fold_shape_computations(prepared.model)
    graph = build_dependency_graph(prepared.model)
    means = measure(graph, load_dataset(DataSpec(str(CALIB), limit=100), prepared.inputs).batches)
    write_model(materialise(plan_pruning(graph, ratio=0.5, criterion="activation"), means), tmp / "reference.onnx")
    assert (tmp / "compensated.onnx").read_bytes() == (tmp / "reference.onnx").read_bytes()
    assert (tmp / "recovered.onnx").read_bytes() != (tmp / "reference.onnx").read_bytes()


def test_pruning_in_steps_reaches_the_one_shot_model_size(pruned, tmp_path):
    _, runs = pruned
    r, data = _prune(tmp_path, "steps", "--steps", "3", "--allocation", "uniform")
    assert data["how"] == "least-squares recovery, 3 steps" and len(data["recovery"]) == 3
    kept = [s["kept"] for s in data["recovery"]]
    assert kept[0] > kept[1] > kept[2] == runs["recovered"][1]["recovery"][0]["kept"]
    assert data["after"] == runs["recovered"][1]["after"]
    assert "2 layers re-fitted in the last step on 100 samples" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--steps", "2"], "--steps needs --ratio and --calibration"),
    (["--steps", "2", "--no-recover", "--calibration", str(CALIB)], "it cannot go with --no-recover"),
    (["--steps", "0", "--calibration", str(CALIB)], "--steps must be at least 1, got 0"),
    (["--finetune", "5"], "--finetune needs --ratio and --calibration"),
    (["--finetune", "0", "--calibration", str(CALIB)], "--finetune takes a time budget in seconds > 0, got 0"),
])
def test_bad_combinations_are_one_clear_message(args, message, tmp_path):
    r = runner.invoke(app, ["prune", str(MODEL), "-o", str(tmp_path / "p.onnx"), "--ratio", "0.5", *args])
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "p.onnx").exists()


def test_finetune_with_dry_run_is_refused(tmp_path):
    r = runner.invoke(app, ["prune", str(MODEL), "--dry-run", "--ratio", "0.5", "--calibration", str(CALIB),
                            "--finetune", "5"])
    assert r.exit_code == 2 and "it cannot go with --dry-run" in r.stderr, r.stderr


def test_finetune_without_torch_names_the_extra_before_pruning(tmp_path, torch_missing):
    r = runner.invoke(app, ["prune", str(MODEL), "-o", str(tmp_path / "p.onnx"), "--ratio", "0.5",
                            "--calibration", str(CALIB), "--finetune", "5"])
    assert r.exit_code == 3 and 'pip install "edgecc[train]"' in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "p.onnx").exists()


@pytest.mark.train
@pytest.mark.skipif(not HAVE_TRAIN, reason='torch and onnx2torch not installed: pip install "edgecc[train]"')
def test_finetune_trains_the_recovered_model_on_every_calibration_sample(pruned, tmp_path):
    """Recovery measures on the first 100 digits; fine-tuning uses all 200 (20 held out), and what is written is
    the trained model, not the recovered one."""
    tmp, runs = pruned
    r, data = _prune(tmp_path, "tuned", "--finetune", "3", "--allocation", "uniform")
    f = data["finetune"]
    assert data["recovery"][0]["samples"] == 100
    assert (f["train_samples"], f["held_out_samples"]) == (180, 20) and f["steps"] >= 1, f
    assert f["writeback"]["max_rel_error"] <= f["writeback"]["tolerance_rel"]
    assert "fine-tuned: " in r.stdout and "held-out output error" in r.stdout
    x = np.load(CALIB)["pixels"][:20].astype(np.float32)
    tuned, recovered = _outputs(tmp_path / "tuned.onnx", x), _outputs(tmp / "recovered.onnx", x)
    assert not np.allclose(tuned, recovered, rtol=0, atol=1e-6)  # trained weights were written
    assert data["after"] == runs["recovered"][1]["after"]  # training changes weights, never shapes


def test_by_default_calibrated_pruning_allocates_by_sensitivity_within_uniform_flops(pruned, tmp_path):
    _, runs = pruned
    _, data = _prune(tmp_path, "default")
    assert data["allocation"]["method"] == "sensitivity"
    assert data["allocation"]["flops_budget"] >= data["allocation"]["flops_planned"]
    assert data["after"]["flops"] <= runs["recovered"][1]["after"]["flops"]
    assert runs["recovered"][1]["allocation"] == {"method": "uniform"}
