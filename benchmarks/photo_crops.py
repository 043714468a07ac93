"""Crops of the photographs that scikit-image and scikit-learn ship, as an .npz for an ImageNet classifier.

The evaluation set for EfficientNet-Lite0 (benchmarks/export_efficientnet_lite0.py): the photographs carry no
labels, so the metric is top-1 AGREEMENT with the FP32 model (`edgecc evaluate --metric agreement`,
`edgecc compare --eval`). Nothing is downloaded: the photos are the ones inside the two wheels
(scikit-image's astronaut, chelsea, coffee, rocket, Hubble deep field, retina, immunohistochemistry, the
two stereo motorcycle views and the cameraman; scikit-learn's china and flower).

Each crop: a photo (in turn), a square of a seeded random side (``--min-scale``..1 of the photo's shorter
side) at a random position, mirrored left-right half the time, resized (bilinear) to SIZE x SIZE, scaled to
[0, 1] and normalised with ImageNet's mean/std, laid out NCHW. Stored as float16 (half the disk; the data
loader widens it to the model's float32 exactly), one array named after the model input (``--input``).

    pip install "scikit-image>=0.26" scikit-learn
    python benchmarks/photo_crops.py OUT.npz [--count 500] [--seed 1] [--size 224]

500 crops of 224x224 are 150 MB: made where needed, never committed. Use another --seed for calibration.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry", "camera")


def photos() -> list[np.ndarray]:
    """The bundled photographs as uint8 [H, W, 3] (greyscale ones repeated over 3 channels)."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    found = [np.asarray(getattr(data, name)()) for name in SKIMAGE_PHOTOS]
    found += list(data.stereo_motorcycle()[:2])
    found += list(load_sample_images().images)
    out = []
    for img in found:
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    return out


def crops(count: int, seed: int, size: int, min_scale: float) -> np.ndarray:
    """``count`` normalised crops, float32 [count, 3, size, size] (see the module docstring)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = photos()
    out = np.empty((count, 3, size, size), np.float32)
    for i in range(count):
        img = images[i % len(images)]
        h, w = img.shape[:2]
        side = max(size // 4, int(rng.uniform(min_scale, 1.0) * min(h, w)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = img[y:y + side, x:x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        resized = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR)
        out[i] = ((np.asarray(resized, np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--min-scale", type=float, default=0.3, help="smallest crop side, as a fraction of the photo's shorter side")
    ap.add_argument("--input", default="input", help="the array's name: the model's input name")
    args = ap.parse_args()
    arr = crops(args.count, args.seed, args.size, args.min_scale)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **{args.input: arr.astype(np.float16)})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.0f} MB): {args.count} crops {list(arr.shape[1:])} of {len(photos())} photos")


if __name__ == "__main__":
    main()
