"""Uniform vs sensitivity allocation of `edgecc prune` (least-squares recovery, no training) on the trained nets:
FLOPs removed (the --report's before/after) and top-1 with `edgecc evaluate`, written to
benchmarks/results/prune_allocation.{md,json}.

The Fashion-MNIST test and selection sets are not in git: make them with
`python benchmarks/fashion_mnist.py --test-set` (they land in benchmarks/data/) or point --data at a directory
that has them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: (model, calibration, held-out set) in the data directory
NETS = [("fmnist_mobilenet", "fmnist_calib.npz", "fmnist_test.npz"), ("fmnist_resnet", "fmnist_calib.npz", "fmnist_test.npz"),
        ("mnist_cnn", "mnist_calib.npz", "mnist_eval.npz")]


def edgecc(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "edgecc", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"edgecc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def top1(model: Path, data: Path) -> float:
    line = edgecc("evaluate", str(model), "--data", str(data), "--metric", "top1").strip().splitlines()[-1]
    return float(line.rsplit(" ", 1)[-1].rstrip("%"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--ratios", default="0.2,0.3")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecc-alloc-") as tmp:
        for net, calib, held in NETS:
            fp32 = top1(args.data / f"{net}.onnx", args.data / held)
            for ratio in args.ratios.split(","):
                for allocation in ("uniform", "sensitivity"):
                    out, report = Path(tmp) / f"{net}-{ratio}-{allocation}.onnx", Path(tmp) / "r.json"
                    start = time.perf_counter()
                    edgecc("prune", str(args.data / f"{net}.onnx"), "-o", str(out), "--ratio", ratio, "--allocation",
                           allocation, "--calibration", str(args.data / calib), "--report", str(report))
                    seconds = time.perf_counter() - start
                    r = json.loads(report.read_text())
                    rows.append({"net": net, "ratio": float(ratio), "allocation": allocation, "fp32_top1": fp32,
                                 "flops_before": r["before"]["flops"], "flops_after": r["after"]["flops"],
                                 "top1": top1(out, args.data / held), "prune_seconds": round(seconds, 1),
                                 "kept": {g["layers"][0]: g["kept"] for g in r["plan"]["groups"]}})
                    print(rows[-1]["net"], ratio, allocation, rows[-1]["top1"], flush=True)
    results = ROOT / "benchmarks" / "results"
    (results / "prune_allocation.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# Uniform vs sensitivity channel allocation (edgecc prune, least-squares recovery, no training)", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by benchmarks/prune_allocation.py, on "
             "a 2-core machine shared with other jobs (seconds are wall time of `edgecc prune`, load included). "
             "FLOPs removed: the --report's before/after. Top-1 by `edgecc evaluate` on the held-out set (Fashion-MNIST: "
             "the 10,000 test images; MNIST: 1,000 digits).", "",
             "| net | ratio | FP32 top-1 | FLOPs removed uniform | top-1 uniform | FLOPs removed sensitivity | top-1 sensitivity | s uniform / sensitivity |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for u, s in zip(rows[::2], rows[1::2]):
        removed = lambda r: 100 * (1 - r["flops_after"] / r["flops_before"])  # noqa: E731
        lines.append(f"| {u['net']} | {u['ratio']:g} | {u['fp32_top1']:.2f}% | {removed(u):.1f}% | {u['top1']:.2f}% | "
                     f"{removed(s):.1f}% | {s['top1']:.2f}% | {u['prune_seconds']:.0f} / {s['prune_seconds']:.0f} |")
    (results / "prune_allocation.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
