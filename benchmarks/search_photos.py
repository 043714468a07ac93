"""`edgecc search` of an image classifier on real photographs, with its HTML report and a chromium screenshot.

The evaluation set is real images (crops of the photographs bundled with scikit-image, made on first use in
--work, so a later run with the same --json resumes; nothing downloaded) and, as they carry no labels, the
metric is top-1 AGREEMENT with the original model's onnxruntime FP32 outputs: "drop 1 point" means one
percent of these images changed their top-1 class. Calibration uses other crops of the same photographs.
zoo:resnet50 has seeded RANDOM weights (agreement is the only thing to measure on it); a trained model such as
EfficientNet-Lite0 (benchmarks/export_efficientnet_lite0.py) shows what the search finds on real weights.

    pip install -e ".[photos,search]"   # scikit-image (the photographs) and optuna
    python benchmarks/search_photos.py [--model zoo:resnet50] [--name resnet50] [--prune 0,0.3,0.5]
        [--strategy grid|optuna] [--max-variants N] [--vary B.KEY=V1,V2] [--time-budget 25m] [--images 48]

Writes benchmarks/results/search-NAME.{json,html,png}.
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
    ap.add_argument("--name", default=None, help="results are search-NAME.*; default: the model's name")
    ap.add_argument("--input-shape", default=None, help="passed to edgecc search, e.g. input:1,3,224,224")
    ap.add_argument("--prune", default="0,0.3,0.5")
    ap.add_argument("--lowrank", default="off")
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--strategy", default="grid")
    ap.add_argument("--max-variants", default="12")
    ap.add_argument("--vary", action="append", default=[])
    ap.add_argument("--time-budget", default="25m")
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--max-accuracy-drop", default="1")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "edgecc-benchmarks",
                    help="where the photo crops are kept between runs")
    args = ap.parse_args()
    name = args.name or Path(args.model.removeprefix("zoo:")).stem
    RESULTS.mkdir(exist_ok=True)
    json_path, html_path = RESULTS / f"search-{name}.json", RESULTS / f"search-{name}.html"
    eval_dir, calib_dir = args.work / f"photos-eval-{args.images}-seed1", args.work / "photos-calib-32-seed2"
    args.work.mkdir(parents=True, exist_ok=True)
    for d, count, seed in ((eval_dir, args.images, 1), (calib_dir, 32, 2)):
        if not d.is_dir():  # made beside, then renamed: an interrupted run leaves no half set
            tmp = Path(tempfile.mkdtemp(dir=args.work))
            write_crops(tmp / "crops", count, seed)
            (tmp / "crops").rename(d)
            shutil.rmtree(tmp)
    cmd = [sys.executable, "-m", "edgecc", "search", args.model, "--target", "host", "--backends", args.backends,
           "--precisions", args.precisions, "--prune", args.prune, "--lowrank", args.lowrank,
           "--strategy", args.strategy, "--max-variants", args.max_variants,
           "--eval", str(eval_dir), "--calibration", str(calib_dir),
           "--max-accuracy-drop", args.max_accuracy_drop, "--time-budget", args.time_budget,
           "--warmup", "3", "--runs", "20", "--min-time", "2", "--layer-runs", "3",
           "--json", str(json_path), "--html", str(html_path)]
    for v in args.vary:
        cmd += ["--vary", v]
    if args.input_shape:
        cmd += ["--input-shape", args.input_shape]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", f"--user-data-dir={profile}", "--window-size=1200,2400",
                            f"--screenshot={RESULTS / f'search-{name}.png'}", html_path.resolve().as_uri()],
                           check=True, capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
