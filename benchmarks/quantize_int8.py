"""INT8 on this host: ResNet-50 speed (OpenVINO and onnxruntime INT8 against onnxruntime FP32) and the
trained MNIST CNN's accuracy per backend and precision. Writes benchmarks/results/quantize.md (+ .json).

Every variant is compiled first; then the variants are profiled in interleaved rounds (each in its
own process), so a busy spell on the shared machine hits all of them alike. Speedups are per-round
ratios against onnxruntime FP32 measured in the same round; the table gives their median.

Calibration: ResNet-50 on the photos scikit-image ships (astronaut, chelsea, coffee, ...; the zoo's
ResNet-50 has seeded random weights, so only its speed is meaningful), MNIST on 100 of the committed
training digits (benchmarks/data/mnist_calib.npz). Accuracy: the 1,000 held-out digits.

    pip install scikit-image   # calibration photos
    python benchmarks/quantize_int8.py [--rounds 3] [--runs 30] [--min-time 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from edgecc import api
from edgecc.targets import detect_host

HERE = Path(__file__).parent
RESULTS = HERE / "results"
MNIST = HERE / "data"

# (label, backend, precision, options)
VARIANTS = [
    ("onnxruntime fp32", "onnxruntime", "fp32", None),
    ("onnxruntime int8 (QDQ)", "onnxruntime", "int8", None),
    ("openvino fp32", "openvino", "fp32", None),
    ("openvino bf16", "openvino", "bf16", None),
    ("openvino int8 (QDQ)", "openvino", "int8", None),
    ("openvino int8 (NNCF)", "openvino", "int8", {"int8_quantizer": "nncf"}),
]


def skimage_photos(directory: Path) -> list[str]:
    """Write scikit-image's bundled colour photos as PNG files into ``directory``; their names."""
    import numpy as np
    import skimage.data
    from PIL import Image

    names = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                 "colorwheel", "logo"):
        try:
            img = getattr(skimage.data, name)()
        except Exception as e:  # noqa: BLE001 - some need a download (no network here): say so and go on
            print(f"  skipping skimage.data.{name}: {type(e).__name__}")
            continue
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[:, :, :3]
        if img.ndim != 3:
            continue
        Image.fromarray(np.asarray(img, dtype=np.uint8)).save(directory / f"{name}.png")
        names.append(name)
    return names


THREAD_OPTION = {"onnxruntime": "intra_op_threads", "openvino": "inference_num_threads"}


def compile_all(model: str, calibration: str, out: Path, samples: int, threads: int | None = None) -> dict[str, object]:
    arts = {}
    for label, backend, precision, options in VARIANTS:
        print(f"  compiling {label} ...", flush=True)
        opts = dict(options or {}) | ({THREAD_OPTION[backend]: threads} if threads else {})
        arts[label] = api.compile(
            model, "host", out / label.replace(" ", "_").replace("(", "").replace(")", ""), backend=backend,
            precision=precision, options=opts, calibration=calibration if precision == "int8" else None,
            quantize={"samples": samples},
        )
    return arts


def profile_rounds(arts: dict, rounds: int, settings: api.ProfileSettings) -> dict[str, dict]:
    p50s: dict[str, list[float]] = {k: [] for k in arts}
    mins: dict[str, list[float]] = {k: [] for k in arts}
    ratios: dict[str, list[float]] = {k: [] for k in arts}
    min_ratios: dict[str, list[float]] = {k: [] for k in arts}
    rows: dict[str, object] = {}
    for i in range(rounds):
        base = None
        for label, art in arts.items():
            row = api.profile(art.path, settings)
            rows[label] = row
            if row.status != "ok" or row.latency_ms is None:
                print(f"  round {i + 1}: {label}: {row.status} {row.error}")
                continue
            p50s[label].append(row.latency_ms.p50)
            mins[label].append(row.latency_ms.min)
            if base is None:
                base = row.latency_ms  # onnxruntime fp32 comes first
            ratios[label].append(base.p50 / row.latency_ms.p50)
            min_ratios[label].append(base.min / row.latency_ms.min)
            print(f"  round {i + 1}: {label}: p50 {row.latency_ms.p50:.3f} ms", flush=True)
    return {label: {"p50_ms": p50s[label], "min_ms": mins[label], "speedup": ratios[label], "min_speedup": min_ratios[label]}
            for label in arts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--threads", default="2,1", help="ResNet-50 thread counts to measure (comma-separated)")
    ap.add_argument("--out", type=Path, default=RESULTS / "quantize.md")
    args = ap.parse_args()
    settings = api.ProfileSettings(warmup=10, runs=args.runs, min_time_s=args.min_time, layer_runs=0)
    host = detect_host()
    data: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="edgecc-bench-int8-") as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        used = skimage_photos(photos)
        print(f"resnet50: calibrating on {len(used)} scikit-image photos: {', '.join(used)}")
        resnet, compile_s = {}, {}
        for threads in (int(t) for t in args.threads.split(",")):
            print(f"resnet50, {threads} thread(s):")
            arts = compile_all("zoo:resnet50", str(photos), Path(tmp) / f"resnet50-{threads}", len(used), threads)
            resnet[threads] = profile_rounds(arts, args.rounds, settings)
            compile_s[f"resnet50-{threads}"] = {k: a.manifest.compile_s for k, a in arts.items()}
        print("mnist: compiling and evaluating ...")
        marts = compile_all(str(MNIST / "mnist_cnn.onnx"), str(MNIST / "mnist_calib.npz"), Path(tmp) / "mnist", samples=100)
        mnist = profile_rounds(marts, 1, settings)
        accuracy = {label: api.evaluate(art.path, str(MNIST / "mnist_eval.npz")) for label, art in marts.items()}
        compile_s["mnist"] = {k: a.manifest.compile_s for k, a in marts.items()}

    med = statistics.median
    lines = [
        "# INT8 on this host",
        "",
        f"Written by `benchmarks/quantize_int8.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        "**The machine was shared** with three other engineers' test runs: absolute times are noisy. "
        f"ResNet-50: each variant was profiled in {args.rounds} interleaved rounds (each profile in its own process: 10 warm-up "
        f"runs, then at least {args.runs} runs and {args.min_time:g} s); speedup = onnxruntime FP32 p50 / variant p50 "
        "in the same round, median over rounds.",
        "",
        f"- machine: {host.cpu}, {host.cores} cores, {host.arch}; ISA: {', '.join(host.isa)} (VNNI, AVX512-BF16, no AMX); "
        f"Python {platform.python_version()}",
        "- versions: " + _versions(),
        "- INT8 (QDQ): onnxruntime.quantization static, QDQ, activations U8, weights S8 per channel, min/max calibration, "
        "with onnxruntime's pre-processing; the same QDQ model runs on onnxruntime and on OpenVINO. "
        "INT8 (NNCF): nncf.quantize on the converted FP32 OpenVINO model (performance preset).",
        "",
    ]
    for threads, table in resnet.items():
        base_min = min(table["onnxruntime fp32"]["min_ms"] or [float("nan")])
        lines += [
            f"## zoo:resnet50, batch 1, {threads} thread(s) (calibrated on {len(used)} scikit-image photos; random weights: speed only)",
            "",
            "| variant | p50 ms per round | p50 ms (median) | speedup (median of per-round p50 ratios) | min ms (best run) | speedup (best runs) | compile s (incl. quantisation) |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, res in table.items():
            p = res["p50_ms"]
            lines.append(
                f"| {label} | {' / '.join(f'{v:.2f}' for v in p)} | {med(p):.2f} | {med(res['speedup']):.2f}x | "
                f"{min(res['min_ms']):.2f} | {base_min / min(res['min_ms']):.2f}x | {compile_s[f'resnet50-{threads}'][label]:.1f} |"
                if p else f"| {label} | failed | - | - | - | - | - |"
            )
        lines.append("")
    lines += [
        "Speedup (best runs) = the fastest onnxruntime FP32 run / the variant's fastest run over all rounds: the figure a "
        "busy machine disturbs least.",
    ]
    base_acc = accuracy["onnxruntime fp32"].top1
    lines += [
        "",
        "## MNIST CNN (benchmarks/train_mnist_cnn.py; 4,000 real training digits), 1,000 held-out digits",
        "",
        "Calibrated on 100 training digits (benchmarks/data/mnist_calib.npz). Agreement = top-1 agreement with "
        "onnxruntime FP32 on the original model. Drop = onnxruntime FP32 top-1 minus the variant's (points).",
        "",
        "| variant | top-1 % | drop (points) | agreement % | p50 ms | speedup vs onnxruntime FP32 |",
        "|---|---|---|---|---|---|",
    ]
    for label, res in accuracy.items():
        p = mnist[label]["p50_ms"]
        lines.append(
            f"| {label} | {res.top1:.2f} | {base_acc - res.top1:+.2f} | {res.agreement:.2f} | "
            f"{p[0]:.3f} | {mnist[label]['speedup'][0]:.2f}x |" if p else f"| {label} | {res.top1:.2f} | - | - | failed | - |"
        )
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = {
        "resnet50": {str(t): v for t, v in resnet.items()},
        "mnist": {k: {"p50_ms": mnist[k]["p50_ms"], "speedup": mnist[k]["speedup"], **accuracy[k].to_json()} for k in marts},
        "compile_s": compile_s, "calibration_photos": used,
    }
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))


def _versions() -> str:
    from edgecc.artifact import common_versions
    from edgecc.backends import get_backend

    v = common_versions() | get_backend("openvino").availability().versions
    try:
        import nncf

        v["nncf"] = nncf.__version__
    except ImportError:
        pass
    return ", ".join(f"{k} {val.split('-')[0]}" for k, val in sorted(v.items()))


if __name__ == "__main__":
    main()
