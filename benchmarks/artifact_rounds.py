"""Latency ratios of compiled artifacts in interleaved rounds, and their accuracy on held-out data.

For the artifacts an ``edgecc compare --artifacts-dir DIR`` (or ``edgecc compile``) kept: every round profiles
each artifact once, in the order given (A B C ... A B C ...), so a machine whose speed drifts slows them alike;
the speedup of an artifact is the median over rounds of the first artifact's p50 over its own p50 in the same
round. With ``--eval``, each artifact is then evaluated on that data (``edgecc evaluate``'s API: top-1 with
labels, top-1 agreement with the model it was compiled from without).

    python benchmarks/artifact_rounds.py DIR/onnxruntime-fp32 DIR/openvino-int8 ... [--rounds 7]
        [--eval HELD_OUT.npz] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

from edgecc import api


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def rounds(arts: list[Path], count: int, settings: api.ProfileSettings) -> dict[str, dict]:
    p50s: dict[str, list[float]] = {str(a): [] for a in arts}
    ratios: dict[str, list[float]] = {str(a): [] for a in arts}
    for r in range(count):
        base = None
        for art in arts:
            row = api.profile(art, settings)
            if row.status != "ok" or row.latency_ms is None:
                print(f"  round {r + 1}: {art.name}: {row.status} {row.error}", flush=True)
                continue
            p50 = row.latency_ms.p50
            base = base or p50
            p50s[str(art)].append(p50)
            ratios[str(art)].append(base / p50)
        print(f"  round {r + 1}: " + ", ".join(f"{Path(k).name} {v[-1]:.2f}x" for k, v in ratios.items() if v), flush=True)
    return {k: {"p50_ms_per_round": p50s[k], "speedup_per_round": v,
                "speedup_median": statistics.median(v) if v else None} for k, v in ratios.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifacts", nargs="+", type=Path, help="artifact directories; the first is the baseline")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--eval", default=None, help="held-out data each artifact is evaluated on")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    settings = api.ProfileSettings(warmup=10, runs=args.runs, min_time_s=0.5, layer_runs=0)
    report = {"cpu": cpu_name(), "rounds": args.rounds, "runs": args.runs,
              "latency": rounds(args.artifacts, args.rounds, settings)}
    for art in args.artifacts:
        m = api.load_artifact(art).manifest
        entry = report["latency"][str(art)]
        entry.update(backend=m.backend, precision=m.precision, passes=m.passes)
        if args.eval:
            entry["eval"] = api.evaluate(art, args.eval).to_json()
        acc = entry.get("eval", {})
        print(f"{art.name}: {m.backend} {m.precision} speedup {entry['speedup_median']:.2f}x"
              + (f", top-1 {acc['top1']:.2f}%" if acc.get("top1") is not None else "")
              + (f", agreement {acc['agreement']:.2f}%" if acc.get("agreement") is not None else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
