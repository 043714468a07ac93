"""TVM latency against MetaSchedule trials on this host, next to onnxruntime and OpenVINO measured in
the same run, plus the time a lasting tuning database saves; writes benchmarks/results/tvm-host.md.

For each model: onnxruntime FP32 and OpenVINO FP32 (baselines), TVM untuned ("naive" plain loops,
"sampled" default-rule schedules drawn once, "measured" best of a few draws timed here), then TVM
tuned with each trial budget into a fresh database (so budgets do not share records), compiled with
--tuned and profiled. Finally the largest budget is tuned again into its own database: the time that
second run takes (and its trials, 0) against the first is what the database saves.

    python benchmarks/tvm_trials.py [--models resnet18,mobilenetv2] [--trials 0,64,256] [--untuned naive,sampled]
        [--cross resnet18:resnet50:256] [--append]
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


def model_run(name: str, budgets: list[int], untuned: list[str], work: Path, settings, host) -> dict:
    """One model's rows in one run: baselines, untuned TVM, then each budget into a fresh database."""
    from edgecc.backends.tvm.tune import tune_model

    model = f"zoo:{name}"
    rows = []
    print(f"{model}: baselines", flush=True)
    rows.append(profile_row(model, "onnxruntime", work / name, settings))
    rows.append(profile_row(model, "openvino", work / name, settings))
    for mode in untuned:
        print(f"{model}: tvm untuned ({mode})", flush=True)
        rows.append(profile_row(model, "tvm", work / name, settings, {"schedule": mode}, f"tvm {mode}"))
    prepared = prepare_model(model)
    tunes = []
    for budget in budgets:
        db = work / name / f"db-{budget}"
        print(f"{model}: tuning {budget} trials", flush=True)
        result = tune_model(prepared, host, trials=budget, db_dir=db)
        tunes.append(tune_summary(budget, result))
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
    return {"when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "rows": rows, "reuse": reuse}


def tune_summary(budget: int, result) -> dict:
    return {"budget": budget, "spent": result.trials_spent, "tune_s": round(result.elapsed_s, 1), "tasks": len(result.tasks),
            "tasks_tuned": sum(t.status == "tuned" for t in result.tasks), "tasks_in_db": result.tasks_in_database}


def cross_model_run(source: str, dest: str, budget: int, work: Path, settings, host) -> dict:
    """Tune ``dest`` with ``budget`` trials twice: into a fresh database, and into a copy of the
    database ``source`` was tuned into (its largest budget) in this run. Both are compiled with
    --tuned and profiled next to onnxruntime."""
    from edgecc.backends.tvm.tune import tune_model

    src_dbs = sorted((work / source).glob("db-*"), key=lambda d: int(d.name[3:]))
    if not src_dbs:
        raise SystemExit(f"--cross: {source} was not tuned in this run")
    model = f"zoo:{dest}"
    prepared = prepare_model(model)
    rows = [profile_row(model, "onnxruntime", work / dest, settings)]
    for label, db in (("fresh database", work / dest / "db-fresh"), (f"{source}'s database", work / dest / "db-shared")):
        if db.name == "db-shared":
            shutil.copytree(src_dbs[-1], db)
        print(f"{model}: tuning {budget} trials from {label}", flush=True)
        result = tune_model(prepared, host, trials=budget, db_dir=db)
        row = profile_row(model, "tvm", work / dest, settings, {"tuned": True, "db": str(db)}, f"tvm {budget} trials, {label}")
        row["tune"] = tune_summary(budget, result)
        rows.append(row)
    return {"when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "source": source, "source_db": src_dbs[-1].name,
            "dest": dest, "budget": budget, "rows": rows}


def load_runs(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if "runs" in data:
        return data["runs"]
    return [{"when": "an earlier run (finished by 2026-11-21 08:24 UTC)", **data}]  # written before runs were kept side by side


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,mobilenetv2")
    ap.add_argument("--trials", default="0,64,256", help="budgets; 0 = untuned rows only")
    ap.add_argument("--untuned", default="naive,sampled", help="untuned schedule modes to measure")
    ap.add_argument("--cross", default="", help="SOURCE:DEST:TRIALS, e.g. resnet18:resnet50:256: tune DEST from "
                    "SOURCE's database (tuned in this run) and from a fresh one")
    ap.add_argument("--append", action="store_true", help="keep the runs already in the results, add this one")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "tvm-host.md")
    args = ap.parse_args()

    settings = api.ProfileSettings(warmup=3, runs=args.runs, min_time_s=args.min_time, layer_runs=0)
    budgets = [int(b) for b in args.trials.split(",") if int(b) > 0]
    untuned = [m for m in args.untuned.split(",") if m]
    host = detect_host()
    work = Path(tempfile.mkdtemp(prefix="edgecc-tvm-bench-"))
    cross = args.cross.split(":") if args.cross else None
    names = args.models.split(",")
    results = {p.stem.removeprefix("tvm-host-"): load_runs(p) if args.append else []
               for p in RESULTS.glob("tvm-host-*.json") if p.stem != "tvm-host-cross"}
    cross_runs = load_runs(RESULTS / "tvm-host-cross.json") if args.append else []

    def save(name: str, runs: list[dict]) -> None:
        (RESULTS / f"tvm-host-{name}.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n", encoding="utf-8")
        write_markdown(args.out, host, results, cross_runs)  # after each step, so a long run leaves what it measured

    try:
        for name in names:
            results.setdefault(name, []).append(model_run(name, budgets, untuned, work, settings, host))
            save(name, results[name])
            if cross and cross[0] == name:
                cross_runs.append(cross_model_run(cross[0], cross[1], int(cross[2]), work, settings, host))
                save("cross", cross_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(args.out.read_text())


def table(rows: list[dict]) -> list[str]:
    ort = next((r["p50_ms"] for r in rows if r["row"] == "onnxruntime" and r.get("p50_ms")), None)
    lines = ["| row | status | p50 ms | vs ORT | trials spent | tasks tuned / in database | tune s | compile s | cosine | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        p50 = r.get("p50_ms")
        tune = r.get("tune") or {}
        tasks = f"{tune['tasks_tuned']} / {tune.get('tasks_in_db', 0)} of {tune['tasks']}" if tune else "-"
        lines.append("| " + " | ".join([
            r["row"], r["status"], f"{p50:.2f}" if p50 else "-", f"{ort / p50:.3f}x" if (p50 and ort) else "-",
            str(tune.get("spent", "-")), tasks, str(tune.get("tune_s", "-")), str(r.get("compile_s", "-")),
            f"{r['cosine']:.6f}" if r.get("cosine") is not None else "-",
            "; ".join(n for n in r.get("notes", []) if n.startswith("fused")) or (r.get("error") or "")[:80],
        ]) + " |")
    return lines


def write_markdown(out: Path, host, results: dict[str, list[dict]], cross_runs: list[dict]) -> None:
    keep = ""
    if out.is_file() and NOTES_MARK in out.read_text(encoding="utf-8"):
        keep = out.read_text(encoding="utf-8").split(NOTES_MARK, 1)[1]
    lines = [
        "# TVM on this host: latency against tuning trials",
        "",
        f"Written by `benchmarks/tvm_trials.py` on {host.description} ({host.cpu}). The machine was shared with other "
        "engineers' jobs while this ran: absolute times are noisy. Each table is one run, every row of it measured in "
        "that run, so ratios against that run's onnxruntime are the figures to read. vs ORT = onnxruntime p50 / row p50 "
        "(above 1: faster than onnxruntime).",
        "",
    ]
    for name, runs in results.items():
        if not runs:
            continue
        lines += [f"## zoo:{name}", ""]
        for run in runs:
            lines += [f"Run of {run['when']}:", "", *table(run["rows"])]
            if run.get("reuse"):
                u = run["reuse"]
                lines += ["", f"Database reuse: tuning {u['budget']} trials took {u['first_s']} s; the same command again "
                          f"took {u['again_s']} s and spent {u['again_trials']} trials ({u['tasks_in_db']} tasks found in the database)."]
            lines.append("")
    for run in cross_runs:
        lines += [f"## Reuse across models: zoo:{run['dest']} from zoo:{run['source']}'s database", "",
                  f"Run of {run['when']}: zoo:{run['dest']} tuned with {run['budget']} trials into a fresh database, and into a "
                  f"copy of the database zoo:{run['source']} was tuned into in the same run ({run['source_db']}).", "",
                  *table(run["rows"]), ""]
    out.write_text("\n".join(lines) + NOTES_MARK + keep, encoding="utf-8")


NOTES_MARK = "\n## What these numbers say\n"


if __name__ == "__main__":
    main()
