"""Structured pruning of zoo:resnet50 at several ratios: FLOPs, parameters, and latency on onnxruntime and
OpenVINO against the unpruned model, all measured in this one run.

Each variant is compiled through edgecc (`api.compile(..., prune=R)`, the same path as
`edgecc compile --prune R`) for the host target; the runners are then timed interleaved, round by
round, so that the shared machine's noise hits every variant alike. Speedups are ratios of medians
against the unpruned model on the same backend.

    python benchmarks/prune_resnet50.py [--ratios 0.3,0.5,0.7] [--rounds 5] [--runs 20]

Writes benchmarks/results/prune.md and prune.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgecc import api
from edgecc.backends import get_backend
from edgecc.graph.analysis import analyze
from edgecc.graph.io import prepare_model
from edgecc.profiling.inputs import make_inputs
from edgecc.targets import detect_host

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="zoo:resnet50")
    ap.add_argument("--ratios", default="0.3,0.5,0.7")
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    ratios = [0.0] + [float(r) for r in args.ratios.split(",")]
    backends = [b for b in args.backends.split(",") if get_backend(b).availability().available]
    base = prepare_model(args.model)
    feeds = make_inputs(base.model, base.inputs, 0)
    rows: dict[tuple[float, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="edgecc-bench-prune-") as tmp, contextlib.ExitStack() as stack:
        runners = {}
        outputs = {}
        for ratio in ratios:
            for be in backends:
                art = api.compile(args.model, "host", Path(tmp) / f"{be}-{ratio}", backend=be, prune=ratio or None)
                runner = stack.enter_context(get_backend(be).open_runner(art))
                runners[(ratio, be)] = runner
                outputs[(ratio, be)] = runner.run(feeds)
                rows[(ratio, be)] = {"flops": art.manifest.model.flops, "compile_s": art.manifest.compile_s,
                                     "passes": art.manifest.passes}
        for key, r in runners.items():
            for _ in range(5):
                r.run(feeds)
        samples: dict[tuple[float, str], list[float]] = {k: [] for k in runners}
        for _ in range(args.rounds):
            for key, r in runners.items():
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    r.run(feeds)
                    times.append((time.perf_counter() - t0) * 1000.0)
                samples[key].append(float(np.median(times)))
    params = {}
    for ratio in ratios:
        if ratio:
            from edgecc.graph.prune import build_dependency_graph, materialise, plan_pruning

            model = prepare_model(args.model).model
            params[ratio] = analyze(materialise(plan_pruning(build_dependency_graph(model), ratio=ratio))).params
        else:
            params[ratio] = analyze(base.model).params
    for key in rows:
        rows[key]["latency_ms"] = float(np.median(samples[key]))
        rows[key]["params"] = params[key[0]]
        ref = outputs[(0.0, key[1])]
        got = outputs[key]
        a = np.concatenate([v.ravel() for v in ref.values()]).astype(np.float64)
        b = np.concatenate([v.ravel() for v in got.values()]).astype(np.float64)
        rows[key]["cosine_vs_unpruned"] = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    write(args, ratios, backends, rows)


def write(args, ratios, backends, rows) -> None:
    RESULTS.mkdir(exist_ok=True)
    data = [{"ratio": r, "backend": b, **rows[(r, b)]} for r in ratios for b in backends]
    (RESULTS / "prune.json").write_text(json.dumps(data, indent=2) + "\n")
    host = detect_host()
    lines = [
        f"# Structured pruning of {args.model}: FLOPs, params, latency",
        "",
        f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {host.description} "
        f"(Python {platform.python_version()}).",
        "The machine was shared with other jobs while this ran: latencies are medians of "
        f"{args.rounds} interleaved rounds of {args.runs} runs each, every variant in every round, so noise hits all alike. "
        "Speedup is the unpruned model's median over the pruned one's on the same backend, in this run. "
        "Criterion l1 (no calibration data given), each coupled channel group pruned at the ratio (residual stages are one group each), "
        "kept counts rounded to multiples of 8 as --prune does for groups of 64+ channels; "
        "weights are random (zoo), so the cosine against the unpruned outputs shows only that the model changed, "
        "not an accuracy.",
        "",
        "| ratio | backend | GFLOPs | params (M) | latency ms | speedup | cosine vs unpruned |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in ratios:
        for b in backends:
            row = rows[(r, b)]
            base = rows[(0.0, b)]["latency_ms"]
            lines.append(f"| {r:g} | {b} | {row['flops'] / 1e9:.3f} | {row['params'] / 1e6:.2f} | {row['latency_ms']:.2f} | "
                         f"{base / row['latency_ms']:.2f}x | {row['cosine_vs_unpruned']:.4f} |")
    (RESULTS / "prune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
