"""`edgecc search zoo:resnet50 --target host` on real photographs, with its HTML report and a chromium screenshot.

zoo:resnet50 has seeded RANDOM weights, so no labelled set measures a real accuracy for it. The evaluation set is
real images (crops of the photographs bundled with scikit-image, made at run time, nothing downloaded) and the
metric is top-1 AGREEMENT with the original model's onnxruntime FP32 outputs: "drop 1 point" means one percent
of these images changed their top-1 class. Calibration uses other crops of the same photographs.

    pip install -e ".[photos]"   # scikit-image, only for this benchmark: the photographs
    python benchmarks/search_resnet50.py [--prune 0,0.3,0.5] [--time-budget 25m] [--images 48]

Writes benchmarks/results/search-resnet50.{json,html,png,md}.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field", "retina", "immunohistochemistry")


def write_crops(out: Path, count: int, seed: int) -> None:
    """``count`` random crops (and mirror images) of scikit-image's bundled colour photographs, as PNG files."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = []
    for name in PHOTOS:
        img = np.asarray(getattr(data, name)() if name != "motorcycle_left" else data.stereo_motorcycle()[0])
        if img.ndim == 3 and img.shape[2] >= 3:
            photos.append(img[..., :3].astype(np.uint8))
    out.mkdir(parents=True)
    for i in range(count):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.4, 1.0) * min(h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = img[y:y + side, x:x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        Image.fromarray(np.ascontiguousarray(crop)).save(out / f"{i:03d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="zoo:resnet50")
    ap.add_argument("--prune", default="0,0.3,0.5")
    ap.add_argument("--lowrank", default="off")
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--time-budget", default="25m")
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--max-accuracy-drop", default="1")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    json_path, html_path = RESULTS / "search-resnet50.json", RESULTS / "search-resnet50.html"
    with tempfile.TemporaryDirectory(prefix="edgecc-search-bench-") as tmp:
        write_crops(Path(tmp) / "eval", args.images, seed=1)
        write_crops(Path(tmp) / "calib", 32, seed=2)
        cmd = [sys.executable, "-m", "edgecc", "search", args.model, "--target", "host", "--backends", args.backends,
               "--precisions", args.precisions, "--prune", args.prune, "--lowrank", args.lowrank,
               "--eval", str(Path(tmp) / "eval"), "--calibration", str(Path(tmp) / "calib"),
               "--max-accuracy-drop", args.max_accuracy_drop, "--time-budget", args.time_budget,
               "--warmup", "3", "--runs", "20", "--min-time", "2", "--layer-runs", "3",
               "--json", str(json_path), "--html", str(html_path)]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", f"--user-data-dir={profile}", "--window-size=1200,2400",
                            f"--screenshot={RESULTS / 'search-resnet50.png'}", html_path.resolve().as_uri()],
                           check=True, capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
