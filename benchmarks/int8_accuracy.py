"""INT8 that keeps accuracy, measured: top-1 of FP32, today's INT8, each accuracy step alone and combined, and
the accuracy-aware mixed-precision model, on onnxruntime and OpenVINO; then latency of the mixed model
against onnxruntime FP32 and OpenVINO FP32 in interleaved rounds (A B C ... A B C ...; ratios only).

Steps (edgecc.graph.quantize): cle = cross-layer equalisation (ReLU6 pairs adjusted to the calibration
maxima), mse = activation range per tensor by lowest quantisation MSE, bc1/bcseq = bias correction in
one pass / layer by layer, combined = cle + mse + bcseq, mixed = combined + the fewest layers in float
that bring the drop within --max-drop points (chosen on --eval, reported on --test: held out when given).

    python benchmarks/int8_accuracy.py --model benchmarks/data/mnist_cnn.onnx \
        --calibration benchmarks/data/mnist_calib.npz --eval benchmarks/data/mnist_eval.npz [--name mnist]
        [--test TEST.npz] [--max-drop 0.5] [--rounds 5] [--samples 100] [--no-latency]

Without labels in the data the metric is top-1 agreement with the FP32 model. Writes
benchmarks/results/int8_accuracy-NAME.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecc import api
from edgecc.data import DataSpec, load_dataset
from edgecc.evaluation import top1_accuracy, top1_agreement
from edgecc.graph.io import prepare_model, save_model
from edgecc.graph.quantize import QuantizeSettings, quantize_accurate, quantize_qdq, quantize_within_budget
from edgecc.graph.quantize._session import outputs

RESULTS = Path(__file__).parent / "results"


def score_fn(data, fp32_model):
    """Percent top-1 (labels) or agreement with FP32 of a model's outputs on ``data``."""
    if data.labels is not None:
        return lambda out: top1_accuracy(out, data.labels), "top-1"
    ref = outputs(fp32_model, data)
    return lambda out: top1_agreement(out, ref), "agreement with FP32"


VARIANTS = ("int8", "int8 +cle", "int8 +mse", "int8 +bc1", "int8 +bcseq", "int8 combined")


def accuracy_variants(prepared, cal, settings, wanted, combined_bias, report):
    """name -> (float model it came from, QDQ model, notes, seconds), each scored by ``report`` when made."""
    m = prepared.model
    out = {}

    def timed(name, fn):
        if name not in wanted:
            return
        t0 = time.perf_counter()
        res = fn()
        out[name] = (res[0], res[1], res[2], time.perf_counter() - t0)
        report(name, out[name])

    def plain(s):
        q = quantize_qdq(m, cal, s)
        return q.float_model, q.model, q.notes

    def acc(**kw):
        r = quantize_accurate(m, cal, kw.pop("settings", settings), **kw)
        return r.float_model, r.model, r.notes

    timed("int8", lambda: plain(settings))
    timed("int8 +cle", lambda: acc(bias_correction=None))
    timed("int8 +mse", lambda: plain(settings.model_copy(update={"method": "mse"})))
    timed("int8 +bc1", lambda: acc(equalization=False, bias_correction="one-pass"))
    timed("int8 +bcseq", lambda: acc(equalization=False, bias_correction="sequential"))
    timed("int8 combined", lambda: acc(settings=settings.model_copy(update={"method": "mse"}),
                                       bias_correction=combined_bias))
    return out


def openvino_top1(model, data, score, tmp: Path, name: str) -> tuple[float, dict]:
    """Score of ``model`` run by OpenVINO (through edgecc's artifact), and per reverted-layer runtime precisions."""
    path = save_model(model, tmp / f"{name}.onnx")
    art = api.compile(str(path), "host", tmp / f"ov-{name}", backend="openvino", precision="fp32")
    from edgecc.backends import get_backend
    from edgecc.evaluation import run_dataset

    be = get_backend("openvino")
    with be.open_runner(art) as runner:
        out = run_dataset(runner.run, data, art.outputs[0].name)
        prec = {}
        for op in runner.compiled.get_runtime_model().get_ops():
            rt = op.get_rt_info()
            if "runtimePrecision" in rt and "originalLayersNames" in rt:
                for layer in rt["originalLayersNames"].astype(str).split(","):
                    prec[layer] = rt["runtimePrecision"].astype(str)
    return score(out), prec


def latency_rounds(models: dict, tmp: Path, rounds: int) -> dict:
    """Interleaved rounds over every (label -> (path, backend)); per-round p50 ratios against the first."""
    arts = {label: api.compile(str(p), "host", tmp / f"lat-{i}", backend=be, precision="fp32")
            for i, (label, (p, be)) in enumerate(models.items())}
    settings = api.ProfileSettings(warmup=20, runs=200, min_time_s=1.0, layer_runs=0)
    ratios: dict[str, list[float]] = {k: [] for k in arts}
    for r in range(rounds):
        base = None
        for label, art in arts.items():
            row = api.profile(art.path, settings)
            if row.status != "ok" or row.latency_ms is None:
                print(f"  round {r + 1}: {label}: {row.status} {row.error}")
                continue
            base = base or row.latency_ms.p50
            ratios[label].append(base / row.latency_ms.p50)
            print(f"  round {r + 1}: {label}: {base / row.latency_ms.p50:.2f}x", flush=True)
    return {k: {"speedup_per_round": v, "speedup_median": statistics.median(v) if v else None} for k, v in ratios.items()}


def validate_proxy(float_model, qmodel, ev, proxy: list[tuple[str, float]]) -> dict:
    """Rank every layer by the metric gained with only it in float (the exact, costly ranking) and compare
    with the output-error proxy: Spearman correlation and overlap of the top 5 / top 10."""
    from edgecc.graph.quantize.mixed import onnxruntime_scorer, rank_by_metric

    t0 = time.perf_counter()
    exact = rank_by_metric(qmodel, float_model, [n for n, _ in proxy], onnxruntime_scorer(ev, float_model))
    order_p = [n for n, _ in proxy]
    order_e = [n for n, _ in exact]
    rp = np.array([order_p.index(n) for n in order_e], float)
    re_ = np.arange(len(order_e), dtype=float)
    rho = float(np.corrcoef(rp, re_)[0, 1]) if len(rp) > 1 else 1.0
    top = {k: len(set(order_p[:k]) & set(order_e[:k])) for k in (5, 10)}
    return {"spearman": rho, "top5_overlap": top[5], "top10_overlap": top[10], "metric_ranking": exact[:20],
            "seconds": round(time.perf_counter() - t0, 1),
            "summary": f"Spearman {rho:.2f} over {len(rp)} layers, top-5 overlap {top[5]}/5, top-10 {top[10]}/10"}


def split(data, first: int):
    """(the batches holding the first ``first`` samples, the rest), labels split alike."""
    from edgecc.data import Dataset

    k = next(i for i in range(len(data.valid) + 1) if sum(data.valid[:i]) >= first)
    n = sum(data.valid[:k])
    lab = data.labels
    return (Dataset(data.batches[:k], data.valid[:k], None if lab is None else lab[:n], data.source),
            Dataset(data.batches[k:], data.valid[k:], None if lab is None else lab[n:], data.source))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calibration", required=True)
    ap.add_argument("--eval", required=True, help="data the mixed-precision search measures the drop on")
    ap.add_argument("--test", default=None, help="held-out data every figure is reported on (default: --eval)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--input-shape", default=None)
    ap.add_argument("--max-drop", type=float, default=0.5)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--rank-samples", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--select", type=int, default=0,
                    help="without --test: the search uses the first N --eval samples, figures the rest (held out)")
    ap.add_argument("--validate-proxy", action="store_true",
                    help="also rank every layer by the metric itself (one evaluation per layer) and compare the rankings")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    ap.add_argument("--combined-bias", default="sequential", help="bias correction in the combined variant")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-openvino", action="store_true")
    args = ap.parse_args()
    name = args.name or Path(args.model).stem
    shapes = None
    if args.input_shape:
        from edgecc.graph.io import parse_input_shapes

        shapes = parse_input_shapes([args.input_shape])
    prepared = prepare_model(args.model, shapes)
    settings = QuantizeSettings(samples=args.samples)
    cal = load_dataset(DataSpec(args.calibration, limit=args.samples), prepared.inputs)
    ev = load_dataset(args.eval, prepared.inputs)
    if args.test:
        test = load_dataset(args.test, prepared.inputs)
    elif args.select:
        ev, test = split(ev, args.select)
    else:
        test = ev
    score, metric = score_fn(test, prepared.model)
    report: dict = {"model": args.model, "metric": metric, "eval": args.eval, "select": args.select,
                    "combined_bias": args.combined_bias, "test": args.test or args.eval,
                    "test_samples": test.samples, "max_drop": args.max_drop, "machine": platform.processor() or platform.machine()}
    fp32 = score(outputs(prepared.model, test))
    print(f"fp32 {metric}: {fp32:.2f}", flush=True)
    rows = {"fp32": {"onnxruntime": fp32}}
    def record(label, made):
        _, q, notes, secs = made
        rows[label] = {"onnxruntime": score(outputs(q, test)), "seconds": round(secs, 1), "notes": notes}
        print(f"{label}: {rows[label]['onnxruntime']:.2f} ({secs:.0f} s)", flush=True)

    wanted = set(args.variants.split(",")) | {"int8", "int8 combined"}
    variants = accuracy_variants(prepared, cal, settings, wanted, args.combined_bias, record)
    float_model, combined = variants["int8 combined"][0], variants["int8 combined"][1]
    t0 = time.perf_counter()
    mixed = quantize_within_budget(float_model, cal, ev, args.max_drop, settings, quantized=combined,
                                   rank_samples=args.rank_samples)
    print(mixed.describe(), flush=True)
    rows["int8 mixed"] = {"onnxruntime": score(outputs(mixed.model, test)), "seconds": round(time.perf_counter() - t0, 1),
                          "float_layers": mixed.float_layers, "drop_on_eval": mixed.drop,
                          "steps": [s.to_json() for s in mixed.steps], "sensitivity": mixed.sensitivity[:20]}
    if args.validate_proxy:
        report["proxy_validation"] = validate_proxy(float_model, combined, ev, mixed.sensitivity)
        print(f"proxy validation: {report['proxy_validation']['summary']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="edgecc-int8acc-") as tmpdir:
        tmp = Path(tmpdir)
        if not args.no_openvino:
            rows["fp32"]["openvino"], _ = openvino_top1(prepared.model, test, score, tmp, "fp32")
            for label in ("int8", "int8 combined"):
                rows[label]["openvino"], _ = openvino_top1(variants[label][1], test, score, tmp, label.replace(" ", "_"))
            ov_score, prec = openvino_top1(mixed.model, test, score, tmp, "mixed")
            rows["int8 mixed"]["openvino"] = ov_score
            layers = [n for n in (mixed.float_layers + [s[0] for s in mixed.sensitivity]) if n in prec]
            rows["int8 mixed"]["openvino_runtime_precision"] = {n: prec[n] for n in dict.fromkeys(layers)}
        for label, row in rows.items():
            print(f"{label}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k in ("onnxruntime", "openvino")))
        if not args.no_latency:
            paths = {"fp32": save_model(prepared.model, tmp / "l-fp32.onnx"),
                     "int8": save_model(variants["int8"][1], tmp / "l-int8.onnx"),
                     "mixed": save_model(mixed.model, tmp / "l-mixed.onnx")}
            models = {"onnxruntime fp32": (paths["fp32"], "onnxruntime"), "openvino fp32": (paths["fp32"], "openvino"),
                      "onnxruntime int8": (paths["int8"], "onnxruntime"), "openvino int8": (paths["int8"], "openvino"),
                      "onnxruntime int8 mixed": (paths["mixed"], "onnxruntime"),
                      "openvino int8 mixed": (paths["mixed"], "openvino")}
            report["latency"] = latency_rounds(models, tmp, args.rounds)
    report["rows"] = rows
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"int8_accuracy-{name}.json"
    out.write_text(json.dumps(report, indent=1, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
