"""Compare backends on the bundled models on this machine and write benchmarks/results/host.md.

Every speedup is a ratio against the onnxruntime FP32 baseline measured in the same run, row after
row, so the machine's noise affects both sides alike. The raw reports go to results/host-<model>.json.

    python benchmarks/compare_zoo.py [--models resnet50,resnet18,mobilenetv2,bert-tiny] [--runs 50]
"""

from __future__ import annotations

import argparse
import platform
from datetime import datetime, timezone
from pathlib import Path

from edgecc import api
from edgecc.targets import detect_host

RESULTS = Path(__file__).parent / "results"


def _row_line(model: str, r) -> str:
    lat = r.latency_ms
    cells = [
        model, r.backend, r.precision, r.status,
        f"{lat.p50:.2f}" if lat else "-", f"{lat.p90:.2f}" if lat else "-",
        f"{r.speedup:.2f}x" if r.speedup else "-",
        f"{r.cosine:.6f}" if r.cosine is not None else "-",
        f"{r.max_abs_error:.2e}" if r.max_abs_error is not None else "-",
        (r.error or "").replace("|", "/")[:80],
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,resnet18,mobilenetv2,bert-tiny")
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "host.md")
    args = ap.parse_args()

    settings = api.ProfileSettings(warmup=10, runs=args.runs, min_time_s=args.min_time, layer_runs=0)
    host = detect_host()
    reports = []
    for name in args.models.split(","):
        print(f"comparing zoo:{name} ...", flush=True)
        report = api.compare(f"zoo:{name}", "host", backends=args.backends.split(","), settings=settings)
        (RESULTS / f"host-{name}.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
        reports.append((name, report))

    versions = reports[0][1].versions
    lines = [
        "# Backend comparison on this host",
        "",
        f"Written by `benchmarks/compare_zoo.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        "Speedup = onnxruntime FP32 p50 / row p50, both measured in the same run; "
        "cosine and max abs error are against onnxruntime's outputs on the original model.",
        "",
        f"- machine: {host.cpu}, {host.cores} cores, {host.arch}, {host.memory_gib:g} GiB; "
        f"ISA: {', '.join(host.isa)}; Python {platform.python_version()}",
        "- versions: " + ", ".join(f"{k} {v.split('-')[0]}" for k, v in sorted(versions.items())),
        f"- settings: 10 warm-up runs, then at least {args.runs} runs and {args.min_time:g} s per row; batch 1; "
        "each row in its own process",
        "",
        "| model | backend | precision | status | p50 ms | p90 ms | speedup | cosine | max abs err | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, report in reports:
        lines += [_row_line(name, r) for r in report.results]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
