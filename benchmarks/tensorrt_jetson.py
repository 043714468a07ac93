"""TensorRT FP32/FP16/INT8 against onnxruntime FP32 on a Jetson (or any NVIDIA GPU), as a ratio table.

NOT RUN YET: edgecc's developers have no NVIDIA GPU; this script is for a board owner. Run it on the
Jetson itself (edgecc installed there with TensorRT from JetPack), or from a laptop with the board
reached over SSH:

    python benchmarks/tensorrt_jetson.py --target jetson-orin-nano
    python benchmarks/tensorrt_jetson.py --target jetson-orin-nano --device ssh://nvidia@jetson.local

It writes benchmarks/results/tensorrt-<target>.md and the raw reports as JSON beside it. Every speedup
is onnxruntime FP32 p50 / row p50, both measured on the board in the same run. INT8 needs a quantised
(QDQ) model: the script makes one per model with onnxruntime's static quantisation (symmetric, per
channel, calibrated on seeded random inputs). Its speed is representative; its accuracy columns are
not an accuracy claim (random calibration data), only the error on the reference inputs.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from edgecc import api
from edgecc.report.schema import CompareReport, ResultRow

RESULTS = Path(__file__).parent / "results"


def make_qdq(model: str, out: Path, samples: int = 16) -> Path:
    """A QDQ copy of ``model`` (symmetric int8, zero points 0, which TensorRT requires)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgecc.graph.io import prepare_model, save_model
    from edgecc.profiling.inputs import make_inputs

    prepared = prepare_model(model)
    fp32 = save_model(prepared.model, out.with_suffix(".fp32.onnx"))

    class Seeded(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([make_inputs(prepared.model, prepared.inputs, seed) for seed in range(samples)])

        def get_next(self):  # noqa: ANN201
            return next(self.feeds, None)

    quantize_static(
        str(fp32), str(out), Seeded(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    return out


def run_compare(model: str, target: str, precisions: list[str], settings: api.ProfileSettings,
                device: str | None) -> CompareReport:
    if device:
        from edgecc.remote.device import parse_device
        from edgecc.remote.run import COMPARE_DEVICES, compare_remote

        return compare_remote(parse_device(device, COMPARE_DEVICES), model, target, backends=["tensorrt"],
                              precisions=precisions, settings=settings)
    return api.compare(model, target, backends=["tensorrt"], precisions=precisions, settings=settings)


def row_line(model: str, r: ResultRow, baseline_p50: float | None) -> str:
    lat = r.latency_ms
    speedup = f"{baseline_p50 / lat.p50:.2f}x" if lat and baseline_p50 else "-"
    dev = r.device_latency_ms
    cells = [model, r.backend, r.precision, r.status, f"{lat.p50:.3f}" if lat else "-", f"{lat.p90:.3f}" if lat else "-",
             f"{dev.p50:.3f}" if dev else "-", speedup, f"{r.cosine:.6f}" if r.cosine is not None else "-",
             f"{r.max_abs_error:.2e}" if r.max_abs_error is not None else "-", (r.error or "").replace("|", "/")[:90]]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True, help="the board's target, e.g. jetson-orin-nano")
    ap.add_argument("--device", default=None, help="ssh://user@host[:port][?python=...] to run on a board over SSH")
    ap.add_argument("--models", default="resnet50,resnet18,mobilenetv2,bert-tiny")
    ap.add_argument("--no-int8", action="store_true", help="skip the quantised (QDQ) int8 rows")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    settings = api.ProfileSettings(warmup=20, runs=args.runs, min_time_s=args.min_time, layer_runs=0)
    out = args.out or RESULTS / f"tensorrt-{args.target}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    measured_on = ""
    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="edgecc-trt-bench-") as tmp:
        for name in args.models.split(","):
            print(f"zoo:{name}: onnxruntime fp32, tensorrt fp32 + fp16 ...", flush=True)
            report = run_compare(f"zoo:{name}", args.target, ["fp32", "fp16"], settings, args.device)
            (out.parent / f"{out.stem}-{name}.json").write_text(report.model_dump_json(indent=2) + "\n")
            measured_on, versions = report.measured_on, versions | report.versions
            base = report.results[0].latency_ms.p50 if report.results[0].latency_ms else None
            lines += [row_line(name, r, base) for r in report.results]
            if args.no_int8:
                continue
            print(f"zoo:{name}: quantising (QDQ), tensorrt int8 ...", flush=True)
            qdq = make_qdq(f"zoo:{name}", Path(tmp) / f"{name}.qdq.onnx")
            q = run_compare(str(qdq), args.target, ["int8"], settings, args.device)
            (out.parent / f"{out.stem}-{name}-int8.json").write_text(q.model_dump_json(indent=2) + "\n")
            # the int8 row's speedup is against the fp32 baseline above (the original model), not the QDQ one
            lines += [row_line(f"{name} (QDQ)", r, base) for r in q.results if r.backend == "tensorrt"]

    header = [
        f"# TensorRT on {args.target}",
        "",
        f"Written by `benchmarks/tensorrt_jetson.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Speedup = "
        "onnxruntime FP32 p50 on the original model / row p50, measured on the board in the same run. INT8 rows run a "
        "QDQ model quantised with random calibration data: speed only, not an accuracy result.",
        "",
        f"- measured on: {measured_on}" + (f" (driven from {platform.node()})" if args.device else ""),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        f"- settings: 20 warm-up runs, then at least {args.runs} runs and {args.min_time:g} s per row; batch 1; "
        "latency is end to end (host->device copies, engine, device->host copies); GPU-only = the engine alone, "
        "from CUDA events; speedup uses the end-to-end p50",
        "",
        "| model | backend | precision | status | p50 ms | p90 ms | GPU-only p50 ms | speedup | cosine | max abs err | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    out.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    print("\n".join(header + lines))


if __name__ == "__main__":
    main()
