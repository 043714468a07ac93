"""NNCF's quantize_with_accuracy_control on the accuracy benchmarks: the reference INT8-within-a-budget to beat.

For each model of benchmarks/accuracy.py (same model files, calibration and evaluation data), on OpenVINO:
- FP32: the ONNX model read by OpenVINO (the dynamic batch of EfficientNet-Lite0 fixed to 1);
- NNCF INT8: ``nncf.quantize`` (performance preset) on the calibration set;
- NNCF INT8 with accuracy control: ``nncf.quantize_with_accuracy_control`` with the same calibration set,
  the evaluation set as its validation set and ``max_drop`` (absolute, in points; default 0.5), the metric
  being top-1 with labels or top-1 agreement with FP32 without; per-sample values go to its ranking.
Reported: each model's top-1 (and agreement with FP32) on the whole evaluation set, the operations NNCF
reverted to floating point (from its report), and latency against OpenVINO FP32 measured in the same run
in interleaved rounds (FP32, INT8, INT8-AC, FP32, ...): ratio = FP32 median / variant median per round,
median over rounds. The validation set is the evaluation set, as a user with one labelled set would run
it: the reached accuracy is the one NNCF was allowed to look at.

    python benchmarks/nncf_accuracy_control.py [--models ...] [--max-drop 0.5] [--rounds 5] [--label before]

Writes benchmarks/results/nncf-accuracy-control-LABEL.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import RESULTS, models, prepare, rel  # noqa: E402

from edgecc.data import load_dataset  # noqa: E402
from edgecc.graph.io import prepare_model  # noqa: E402


def load(spec: dict) -> tuple[object, list, list, np.ndarray | None, str]:
    """The OpenVINO FP32 model (batch fixed to 1), calibration and evaluation feeds, labels, input name."""
    import openvino as ov

    shapes = {}
    if spec["shape"]:
        name, dims = spec["shape"][1].split(":")
        shapes[name] = tuple(int(d) for d in dims.split(","))
    prepared = prepare_model(str(spec["model"]), input_shapes=shapes or None)
    model = ov.Core().read_model(str(spec["model"]))
    if shapes:
        model.reshape({k: list(v) for k, v in shapes.items()})
    calib = load_dataset(str(spec["calib"]), prepared.inputs)
    ev = load_dataset(str(spec["eval"]), prepared.inputs)
    return model, calib.batches[:300], ev.batches, ev.labels, prepared.inputs[0].name


def predict(compiled, feeds: list[dict]) -> np.ndarray:
    req = compiled.create_infer_request()
    return np.array([int(np.argmax(req.infer(f)[0])) for f in feeds])


def scores(pred: np.ndarray, labels: np.ndarray | None, ref: np.ndarray) -> dict:
    out = {"agreement": round(100.0 * float(np.mean(pred == ref)), 2)}
    if labels is not None:
        out["top1"] = round(100.0 * float(np.mean(pred == labels)), 2)
    return out


def accuracy_control(model, calib: list, feeds: list, target: np.ndarray, max_drop: float) -> tuple[object, str, float]:
    """NNCF's quantize_with_accuracy_control; the quantised model, NNCF's log, and seconds taken."""
    import nncf

    def validate(compiled, items) -> tuple[float, list[float]]:
        req = compiled.create_infer_request()
        hits = [float(int(np.argmax(req.infer(f)[0])) == target[i]) for i, f in items]
        return 100.0 * float(np.mean(hits)), hits

    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logger = logging.getLogger("nncf")
    logger.addHandler(handler)
    nncf.set_log_level(logging.INFO)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            quantized = nncf.quantize_with_accuracy_control(
                model, nncf.Dataset(calib), nncf.Dataset(list(enumerate(feeds)), lambda item: item[1]), validate,
                max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib),
            )
    finally:
        logger.removeHandler(handler)
    return quantized, log.getvalue(), time.perf_counter() - t0


def reverted(log: str) -> list[str]:
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "were reverted back to the floating-point precision" in line:
            return [ln.strip() for ln in lines[i + 1:] if ln.startswith("\t")]
    return []


def latency(compiled: dict[str, object], feed: dict, rounds: int, runs: int) -> dict[str, dict]:
    """Interleaved rounds: every variant ``runs`` times per round; ms medians and ratios to 'fp32' per round."""
    reqs = {k: c.create_infer_request() for k, c in compiled.items()}
    for r in reqs.values():
        for _ in range(10):
            r.infer(feed)
    med: dict[str, list[float]] = {k: [] for k in reqs}
    for _ in range(rounds):
        for k, r in reqs.items():
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                r.infer(feed)
                times.append((time.perf_counter() - t0) * 1e3)
            med[k].append(float(np.median(times)))
    return {k: {"p50_ms_per_round": [round(v, 4) for v in m],
                "speedup_vs_fp32": round(float(np.median(np.array(med["fp32"]) / np.array(m))), 3)} for k, m in med.items()}


def run(name: str, spec: dict, args: argparse.Namespace) -> dict:
    import nncf
    import openvino as ov

    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY"}
    model, calib, feeds, labels, _ = load(spec)
    fp32 = core.compile_model(model, "CPU", config)
    ref = predict(fp32, feeds)
    target = labels if labels is not None else ref
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        plain = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib))
    plain_s = time.perf_counter() - t0
    ac, log, ac_s = accuracy_control(model, calib, feeds, target, args.max_drop)
    compiled = {"fp32": fp32, "nncf_int8": core.compile_model(plain, "CPU", config),
                "nncf_int8_ac": core.compile_model(ac, "CPU", config)}
    rows = {k: scores(predict(c, feeds), labels, ref) for k, c in compiled.items()}
    rows["nncf_int8"]["seconds"] = round(plain_s, 1)
    rows["nncf_int8_ac"]["seconds"] = round(ac_s, 1)
    lat = latency(compiled, feeds[0], args.rounds, args.runs)
    for k in rows:
        rows[k].update(lat[k])
    return {"model": rel(spec["model"]), "eval": rel(spec["eval"]), "calibration": rel(spec["calib"]),
            "samples": len(feeds), "calibration_samples": len(calib), "metric": spec["metric"], "max_drop": args.max_drop,
            "rows": rows, "reverted": reverted(log), "nncf_log": log.splitlines()[-40:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mnist,fmnist-resnet,fmnist-mobilenet,efficientnet-lite0")
    ap.add_argument("--max-drop", type=float, default=0.5, help="points of the metric (absolute)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=100, help="timed runs per variant per round")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "edgecc-benchmarks" / "accuracy")
    ap.add_argument("--label", default="before")
    args = ap.parse_args()
    import nncf
    import openvino as ov

    out = RESULTS / f"nncf-accuracy-control-{args.label}.json"
    result = json.loads(out.read_text()) if out.is_file() else {"models": {}}
    result.update(nncf=nncf.__version__, openvino=ov.__version__, written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    specs = models(args.work)
    for name in args.models.split(","):
        prepare(name, specs[name], args.work)
        print(f"{name}: ...", flush=True)
        result["models"][name] = res = run(name, specs[name], args)
        print(json.dumps({k: res[k] for k in ("rows", "reverted")}, indent=1), flush=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
