"""TVM commands: ``edgecc tune`` (MetaSchedule into the lasting database) and ``edgecc tuning-db``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..errors import BadInputError
from .common import JsonOpt, ModelArg, ShapeOpt, TargetOpt, TargetsFileOpt, app, err, handle_errors, out, write_json

tuning_db_app = typer.Typer(help="See, share and trim the TVM tuning database (one per target fingerprint).",
                            no_args_is_help=True)
app.add_typer(tuning_db_app, name="tuning-db")

DbOpt = Annotated[Optional[Path], typer.Option("--db", help="tuning database directory (default: the user cache, tvm/tuning)")]


def parse_duration(text: str | None) -> float | None:
    """'90', '90s', '20m', '1h30m' -> seconds; None stays None."""
    if text is None:
        return None
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise BadInputError(f"time budget '{text}': expected e.g. 90s, 20m or 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


@app.command()
@handle_errors
def tune(
    model: ModelArg,
    target: TargetOpt,
    trials: Annotated[int, typer.Option("--trials", help="measured candidates in total, spread over tasks by their share of the work")] = 256,
    time_budget: Annotated[Optional[str], typer.Option("--time-budget", help="stop after this long, e.g. 20m (records kept)")] = None,
    db: DbOpt = None,
    device: Annotated[Optional[str], typer.Option("--device", help="measure on boards behind a TVM RPC tracker: rpc://TRACKER:PORT/KEY")] = None,
    input_shape: ShapeOpt = None,
    json_out: JsonOpt = None,
    targets_file: TargetsFileOpt = None,
) -> None:
    """Tune MODEL's TVM kernels for TARGET with MetaSchedule; records last in the tuning database.

    Tasks the database already holds are not tuned again. Ctrl-C stops and keeps what was measured.
    Then: edgecc compile MODEL --target TARGET --backend tvm --tuned
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .. import api
    from ..backends.tvm.tune import TunePlanned

    budget_s = parse_duration(time_budget)
    quiet = json_out is not None and str(json_out) == "-"
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=quiet) as progress:
        bar = progress.add_task("extracting tasks", total=max(trials, 1))

        def on_progress(ev):
            if isinstance(ev, TunePlanned):
                pending = sum(1 for p in ev.tasks if p.trials > 0)
                known = sum(1 for p in ev.tasks if p.status == "in-database")
                err.print(f"{len(ev.tasks)} tasks: {known} already in the database, {pending} to tune", highlight=False)
                return
            best = f"best {ev.task_best_ms:.3f} ms" if ev.task_best_ms is not None else "no valid measurement yet"
            left = f", {max(0.0, ev.time_budget_s - ev.elapsed_s) / 60:.1f} min left" if ev.time_budget_s else ""
            line = f"task {ev.task_index + 1}/{ev.tasks} {ev.task}: {best}{left}"
            progress.update(bar, completed=ev.trials_spent, description=escape(line))
            if not err.is_terminal and not quiet:  # logs and pipes get one line per measured batch
                err.print(f"{line}; trials {ev.trials_spent}/{ev.trials_budget}, {ev.elapsed_s:.0f} s",
                          highlight=False, markup=False)

        result = api.tune(model, target, trials=trials, time_budget_s=budget_s, db=db, device=device,
                          input_shapes=input_shape, targets_file=targets_file, on_progress=on_progress)
    write_json(json_out, result.to_json())
    if quiet:
        return
    reasons = {"done": "done", "trials": "trial budget spent", "time": "time budget reached", "interrupted": "interrupted; records kept"}
    out.print(
        f"tuned {result.model} for {result.target}: {result.trials_spent} trials in {result.elapsed_s:.0f} s "
        f"({reasons[result.stopped]}); {result.tasks_in_database} of {len(result.tasks)} tasks were already in the "
        f"database; {result.records_added} records added -> {result.database}", highlight=False, markup=False,
    )
    failed = [t for t in result.tasks if t.status == "failed"]
    for t in failed:
        err.print(f"[yellow]note:[/] task {escape(t.name)} got no valid measurement: {escape(t.error or '')}", highlight=False)
    if result.stopped == "interrupted":
        raise typer.Exit(130)


@tuning_db_app.command("list")
@handle_errors
def db_list(db: DbOpt = None, json_out: JsonOpt = None) -> None:
    """Each target fingerprint in the database: target, TVM version, workloads, records."""
    from ..backends.tvm.database import list_databases

    rows = [d.summary() for d in list_databases(db)]
    write_json(json_out, [r.__dict__ for r in rows])
    if json_out is not None and str(json_out) == "-":
        return
    if not rows:
        out.print("the tuning database is empty (edgecc tune fills it)")
        return
    from rich.table import Table

    t = Table(title="TVM tuning database")
    for col in ("fingerprint", "target", "tvm", "workloads", "records", "valid", "KiB"):
        t.add_column(col)
    for r in rows:
        target = f"{r.target.get('mtriple', '?')} {r.target.get('mcpu', '?')} {r.target.get('num-cores', '?')} cores"
        t.add_row(r.fingerprint, target, r.tvm, str(r.workloads), str(r.records), str(r.valid_records), f"{r.bytes / 1024:.0f}")
    out.print(t)


@tuning_db_app.command("export")
@handle_errors
def db_export(
    archive: Annotated[Path, typer.Argument(help=".tar.gz to write")],
    fingerprint: Annotated[Optional[str], typer.Option("--fingerprint", help="only this fingerprint (default: all)")] = None,
    db: DbOpt = None,
) -> None:
    """Write the database (or one fingerprint) to an archive another machine can import."""
    from ..backends.tvm.database import export_databases, list_databases

    dbs = list_databases(db)
    if fingerprint:
        dbs = [d for d in dbs if d.fingerprint == fingerprint]
        if not dbs:
            raise BadInputError(f"no fingerprint '{fingerprint}' in the tuning database (edgecc tuning-db list)")
    n = export_databases(dbs, archive)
    out.print(f"exported {len(dbs)} fingerprint(s), {n} records -> {archive}", highlight=False, markup=False)


@tuning_db_app.command("import")
@handle_errors
def db_import(archive: Annotated[Path, typer.Argument(help="an archive made by tuning-db export")], db: DbOpt = None) -> None:
    """Merge an exported database into this one (records already present are not duplicated)."""
    from ..backends.tvm.database import import_databases

    for fp, added in import_databases(archive, db):
        out.print(f"{fp}: {added} records added", highlight=False, markup=False)


@tuning_db_app.command("prune")
@handle_errors
def db_prune(db: DbOpt = None) -> None:
    """Keep only the best valid record per workload (drops failed measurements and slower candidates)."""
    from ..backends.tvm.database import list_databases

    dbs = list_databases(db)
    if not dbs:
        out.print("the tuning database is empty")
    for d in dbs:
        before, after = d.prune()
        out.print(f"{d.fingerprint}: {before} -> {after} records", highlight=False, markup=False)
