"""TVM latency against MetaSchedule trials on this host, next to onnxruntime and OpenVINO measured in
the same run, plus the time a lasting tuning database saves; writes benchmarks/results/tvm-host.md.

For each model: onnxruntime FP32 and OpenVINO FP32 (baselines), TVM untuned ("naive" plain loops,
"sampled" default-rule schedules drawn once, "measured" best of a few draws timed here), then TVM
tuned with each trial budget into a fresh database (so budgets do not share records), compiled with
--tuned and profiled. Finally the largest budget is tuned again into its own database: the time that
second run takes (and its trials, 0) against the first is what the database saves.

    python benchmarks/tvm_trials.py [--models resnet18,mobilenetv2] [--trials 0,64,256] [--untuned naive,sampled]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from edgecc import api
from edgecc.graph.io import prepare_model
from edgecc.targets import detect_host

RESULTS = Path(__file__).parent / "results"


def profile_row(model: str, backend: str, work: Path, settings: api.ProfileSettings, options: dict | None = None,
                label: str | None = None) -> dict:
    out = work / (label or backend)
    t0 = time.perf_counter()
    try:
        art = api.compile(model, "host", out, backend=backend, options=options)
    except Exception as e:  # a failing row is reported, not fatal to the run
        return {"row": label or backend, "status": "failed", "error": str(e)[:200]}
    compile_s = time.perf_counter() - t0
    row = api.profile(out, settings)
    return {
        "row": label or backend, "status": row.status, "p50_ms": row.latency_ms.p50 if row.latency_ms else None,
        "p90_ms": row.latency_ms.p90 if row.latency_ms else None, "compile_s": round(compile_s, 1),
        "cosine": row.cosine, "verified": row.verified, "notes": art.manifest.notes, "error": row.error,
    }


def main() -> None:
    from edgecc.tuning.metaschedule import tune_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,mobilenetv2")
    ap.add_argument("--trials", default="0,64,256", help="budgets; 0 = untuned rows only")
    ap.add_argument("--untuned", default="naive,sampled", help="untuned schedule modes to measure")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "tvm-host.md")
    args = ap.parse_args()

    settings = api.ProfileSettings(warmup=3, runs=args.runs, min_time_s=args.min_time, layer_runs=0)
    budgets = [int(b) for b in args.trials.split(",") if int(b) > 0]
    host = detect_host()
    work = Path(tempfile.mkdtemp(prefix="edgecc-tvm-bench-"))
    results: dict[str, dict] = {}
    try:
        for name in args.models.split(","):
            model = f"zoo:{name}"
            rows = []
            print(f"{model}: baselines", flush=True)
            rows.append(profile_row(model, "onnxruntime", work / name, settings))
            rows.append(profile_row(model, "openvino", work / name, settings))
            for mode in args.untuned.split(","):
                print(f"{model}: tvm untuned ({mode})", flush=True)
                rows.append(profile_row(model, "tvm", work / name, settings, {"schedule": mode}, f"tvm {mode}"))
            tunes = []
            prepared = prepare_model(model)
            for budget in budgets:
                db = work / name / f"db-{budget}"
                print(f"{model}: tuning {budget} trials", flush=True)
                result = tune_model(prepared, host, trials=budget, db_dir=db)
                tunes.append({"budget": budget, "spent": result.trials_spent, "tune_s": round(result.elapsed_s, 1),
                              "tasks": len(result.tasks), "tasks_tuned": sum(t.status == "tuned" for t in result.tasks)})
                row = profile_row(model, "tvm", work / name, settings, {"tuned": True, "db": str(db)}, f"tvm {budget} trials")
                row["tune"] = tunes[-1]
                rows.append(row)
            reuse = None
            if budgets:
                db = work / name / f"db-{budgets[-1]}"
                t0 = time.perf_counter()
                again = tune_model(prepared, host, trials=budgets[-1], db_dir=db)
                reuse = {"budget": budgets[-1], "first_s": tunes[-1]["tune_s"], "again_s": round(time.perf_counter() - t0, 1),
                         "again_trials": again.trials_spent, "tasks_in_db": again.tasks_in_database}
            results[name] = {"rows": rows, "reuse": reuse}
            (RESULTS / f"tvm-host-{name}.json").write_text(json.dumps(results[name], indent=2) + "\n", encoding="utf-8")
            write_markdown(args.out, host, results)  # after each model, so a long run leaves what it measured
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(args.out.read_text())


def write_markdown(out: Path, host, results: dict[str, dict]) -> None:
    lines = [
        "# TVM on this host: latency against tuning trials",
        "",
        f"Written by `benchmarks/tvm_trials.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {host.description} "
        f"({host.cpu}). The machine was shared with other engineers' test runs while this ran: absolute times are noisy; "
        "every row of a model was measured in the same run, so ratios against onnxruntime are the figures to read. "
        "vs ORT = onnxruntime p50 / row p50 (above 1: faster than onnxruntime).",
        "",
    ]
    for name, res in results.items():
        rows = res["rows"]
        ort = next((r["p50_ms"] for r in rows if r["row"] == "onnxruntime" and r.get("p50_ms")), None)
        lines += [f"## zoo:{name}", "", "| row | status | p50 ms | vs ORT | trials spent | tune s | compile s | cosine | notes |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            p50 = r.get("p50_ms")
            tune = r.get("tune") or {}
            lines.append("| " + " | ".join([
                r["row"], r["status"], f"{p50:.2f}" if p50 else "-", f"{ort / p50:.3f}x" if (p50 and ort) else "-",
                str(tune.get("spent", "-")), str(tune.get("tune_s", "-")), str(r.get("compile_s", "-")),
                f"{r['cosine']:.6f}" if r.get("cosine") is not None else "-",
                "; ".join(n for n in r.get("notes", []) if n.startswith("fused")) or (r.get("error") or "")[:80],
            ]) + " |")
        if res["reuse"]:
            u = res["reuse"]
            lines += ["", f"Database reuse: tuning {u['budget']} trials took {u['first_s']} s; the same command again "
                      f"took {u['again_s']} s and spent {u['again_trials']} trials ({u['tasks_in_db']} tasks found in the database)."]
        lines.append("")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
