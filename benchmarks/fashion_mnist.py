"""Train two small CNNs on Fashion-MNIST (a ResNet-style and a MobileNetV2-style net) and export them to ONNX.

Data: the full Fashion-MNIST set (60,000 training and 10,000 test images, 28x28 grey, 10 classes) that
Debian's package ships as IDX files, read with numpy; nothing is downloaded:

    apt-get install dataset-fashion-mnist      # /usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz

The two nets (batch norm after every convolution; the exporter folds it into the convolutions):
- ``resnet``: a ResNet-style net: 3x3 stem, three stages of basic blocks (two 3x3 convolutions with batch
  norm and a residual add; a strided 1x1 projection where the shape changes) at 32/64/128 channels on
  28/14/7 pixels, global average pool, linear classifier.
- ``mobilenet``: a MobileNetV2-style net: inverted-residual blocks (1x1 expansion, 3x3 depthwise,
  1x1 linear projection; batch norm and ReLU6; residual add when the shape is kept), the case that is
  hard for INT8 and for pruning.

Both take input ``pixels`` float32 [1, 1, 28, 28] in 0..255 (scaling to [0, 1] and Fashion-MNIST's
mean/std normalisation are inside the model) and output ``logits`` [1, 10], as benchmarks/data/mnist_cnn.onnx.

Writes into benchmarks/data/ (committed, small):
- fmnist_resnet.onnx, fmnist_mobilenet.onnx  the trained nets (opset 17, batch 1);
- fmnist_eval.npz     500 test images (50 per class, seeded): ``pixels`` uint8 [500, 1, 28, 28], ``labels`` int64;
- fmnist_calib.npz    500 training images (50 per class, seeded) for calibration, same layout, no labels;
and, with ``--test-set``, only the sets benchmarks use beside them (not committed, ~60 MB; regenerate them):
- fmnist_test.npz     all 10,000 test images with labels, the set benchmarks measure top-1 on;
- fmnist_train.npz    all 60,000 training images WITHOUT labels: the unlabelled samples distillation
                      fine-tuning (edgecc prune --finetune) trains on;
- fmnist_select.npz   1,000 training images with labels (100 per class, seeded, none of fmnist_calib.npz's):
                      the selection set of accuracy-aware mixed precision (edgecc quantize --eval), so no
                      test image chooses what the test set then measures.

Needs torch (CPU) at training time only (the ``train`` extra):
    pip install torch==2.13.0
    python benchmarks/fashion_mnist.py [--model resnet|mobilenet|all] [--epochs N]
    python benchmarks/fashion_mnist.py --test-set          # writes fmnist_test/train/select.npz only
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "data"
IDX_DIR = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training set, pixels scaled to [0, 1]
# Per net: passes over the 60,000 images, batch size, peak learning rate. Kept short so that training fits in
# minutes on 2 cores shared with other work (the committed models were trained with these).
TRAINING = {"resnet": {"epochs": 1, "batch": 128, "lr": 0.1}, "mobilenet": {"epochs": 1, "batch": 256, "lr": 0.15}}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip'd or not) as a numpy array: big-endian header, magic 0x0000 0x08 (uint8) NDIM, dims."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise SystemExit(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise SystemExit(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def load_split(kind: str, idx_dir: Path = IDX_DIR) -> tuple[np.ndarray, np.ndarray]:
    """``kind`` 'train' or 't10k': pixels uint8 [N, 1, 28, 28] and labels int64 [N]."""
    images, labels = idx_dir / f"{kind}-images-idx3-ubyte.gz", idx_dir / f"{kind}-labels-idx1-ubyte.gz"
    if not images.is_file():
        raise SystemExit(f"{images} is missing: apt-get install dataset-fashion-mnist")
    pixels = read_idx(images)[:, None]
    return pixels, read_idx(labels).astype(np.int64)


def per_class(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of ``count`` seeded random samples of every class."""
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:count] for c in range(10)]))


def build_model(kind: str):
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU) -> nn.Sequential:
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, act=None))
            self.skip = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(x) + self.skip(x))

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            mid = cin * expand
            layers = [conv_bn(cin, mid, 1, act=nn.ReLU6)] if expand != 1 else []
            layers += [conv_bn(mid, mid, 3, stride, groups=mid, act=nn.ReLU6), conv_bn(mid, cout, 1, act=None)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.body(x) if self.residual else self.body(x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if kind == "resnet":
                self.features = nn.Sequential(
                    conv_bn(1, 16, 3), BasicBlock(16, 32, 2), BasicBlock(32, 32, 1),
                    BasicBlock(32, 64, 2), BasicBlock(64, 64, 1),
                )
                width = 64
            else:  # (expansion, out channels, blocks, first stride), as MobileNetV2's table, scaled to 28x28
                stages = ((1, 24, 1, 2), (4, 24, 2, 1), (4, 32, 3, 2), (4, 48, 1, 1))
                blocks, cin = [conv_bn(1, 16, 3, act=nn.ReLU6)], 16
                for t, c, n, s in stages:
                    for i in range(n):
                        blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                        cin = c
                blocks.append(conv_bn(cin, 128, 1, act=nn.ReLU6))
                self.features = nn.Sequential(*blocks)
                width = 128
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            x = (pixels / 255.0 - MEAN) / STD
            return self.head(self.features(x))

    return Net()


def augment(xb, flip: bool, shift: int):
    """The batch mirrored left-right (half the samples) and shifted by up to ``shift`` pixels (zero fill)."""
    import torch

    if flip:
        mask = torch.rand(len(xb)) < 0.5
        xb = torch.where(mask[:, None, None, None], xb.flip(3), xb)
    if shift:
        pad = torch.nn.functional.pad(xb, (shift,) * 4)
        dy, dx = (int(v) for v in torch.randint(0, 2 * shift + 1, (2,)))
        xb = pad[:, :, dy:dy + 28, dx:dx + 28]
    return xb


def train(kind: str, args: argparse.Namespace, data: tuple[np.ndarray, ...]) -> None:
    import torch

    torch.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = data
    x, y = torch.from_numpy(train_x.astype(np.float32)), torch.from_numpy(train_y)
    model = build_model(kind)
    epochs, batch, lr = (getattr(args, k) or TRAINING[kind][k] for k in ("epochs", "batch", "lr"))
    steps = epochs * ((len(x) + batch - 1) // batch)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), batch):
            b = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(model(augment(x[b], True, args.shift)), y[b], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
            if (i // batch) % 100 == 99:
                print(f"  {kind} epoch {epoch + 1} step {i // batch + 1}: {time.perf_counter() - t0:.0f} s", flush=True)
        print(f"{kind} epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    with torch.no_grad():
        xt = torch.from_numpy(test_x.astype(np.float32))
        pred = torch.cat([model(xt[i:i + 1000]).argmax(1) for i in range(0, len(xt), 1000)]).numpy()
    acc = 100.0 * float(np.mean(pred == test_y))
    print(f"{kind}: trained in {time.perf_counter() - t0:.0f} s; test top-1 (torch FP32): {acc:.2f}% on {len(test_y)} images")
    path = args.out / f"fmnist_{kind}.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 1, 28, 28),), str(path), input_names=["pixels"], output_names=["logits"],
        opset_version=17, dynamo=False,
    )
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def write_benchmark_sets(args: argparse.Namespace, train_x, train_y, test_x, test_y) -> None:
    """The sets benchmarks/accuracy.py measures with: the test set, the unlabelled training images and a
    labelled selection set drawn from the training images that calibration does not use."""
    cal = set(per_class(train_y, 50, args.seed + 1).tolist())
    rest = np.array([i for i in range(len(train_y)) if i not in cal])
    sel = rest[per_class(train_y[rest], 100, args.seed + 2)]
    sets = {"fmnist_test.npz": dict(pixels=test_x, labels=test_y), "fmnist_train.npz": dict(pixels=train_x),
            "fmnist_select.npz": dict(pixels=train_x[sel], labels=train_y[sel])}
    for name, arrays in sets.items():
        path = args.out / name
        np.savez(path, **arrays)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {len(arrays['pixels'])} images"
              + (" with labels" if "labels" in arrays else ", no labels"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("resnet", "mobilenet", "all"), default="all")
    ap.add_argument("--epochs", type=int, default=None, help="passes over the 60,000 images (default: TRAINING)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: TRAINING)")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate of the one-cycle SGD schedule (default: TRAINING)")
    ap.add_argument("--shift", type=int, default=2, help="random shifts of up to this many pixels (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--idx-dir", type=Path, default=IDX_DIR)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--test-set", action="store_true",
                    help="only write fmnist_test.npz, fmnist_train.npz and fmnist_select.npz (see above)")
    args = ap.parse_args()

    train_x, train_y = load_split("train", args.idx_dir)
    test_x, test_y = load_split("t10k", args.idx_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.test_set:
        write_benchmark_sets(args, train_x, train_y, test_x, test_y)
        return
    import torch

    torch.set_num_threads(args.threads)
    for kind in (("resnet", "mobilenet") if args.model == "all" else (args.model,)):
        train(kind, args, (train_x, train_y, test_x, test_y))
    ev, cal = per_class(test_y, 50, args.seed), per_class(train_y, 50, args.seed + 1)
    np.savez_compressed(args.out / "fmnist_eval.npz", pixels=test_x[ev], labels=test_y[ev])
    np.savez_compressed(args.out / "fmnist_calib.npz", pixels=train_x[cal])
    for p in ("fmnist_eval.npz", "fmnist_calib.npz"):
        print(f"wrote {args.out / p} ({(args.out / p).stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
