"""MetaSchedule tuning of a model for a TVM target, into the lasting database.

The model is imported and fused exactly as the compile does (backends/tvm/lowering), so records key
the same functions. Tasks the database already holds a valid measurement for are skipped: a second
tune of the same model spends no trials, and a model sharing workloads with one tuned before starts
from those records. The trial budget is spread over the remaining tasks by their share of the
model's work (FLOPs x occurrences), most important first, each task tuned by its own MetaSchedule
run with max_trials_per_task set to its share: without that cap MetaSchedule spends the budget on
the first tasks it meets. New records go to a session database and are merged into the lasting one
at the end, also when the run is interrupted (Ctrl-C) or its time budget runs out.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .database import FAILED_RUN_SECS, TuningDatabase, json_database

if TYPE_CHECKING:
    from ..graph.io import PreparedModel
    from ..remote.rpc import RpcAddress
    from ..targets import Target

# Each MetaSchedule batch restarts the builder's worker pool (~20 s here): large batches amortise it.
MAX_BATCH = 64
# A task gets at least this many trials (or what is left), so each tuned task has a real measurement.
MIN_TRIALS_PER_TASK = 8
# Some conv candidates take over 30 s to build on 2 cores; they still count as trials.
BUILD_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 30.0


@dataclass
class TaskPlan:
    name: str
    weight: int
    flops: float
    share: float
    trials: int
    status: Literal["pending", "in-database", "tuned", "skipped", "interrupted", "failed"] = "pending"
    trials_spent: int = 0
    best_ms: float | None = None
    error: str | None = None


@dataclass
class TuneResult:
    database: str
    fingerprint: str
    tasks: list[TaskPlan]
    trials_budget: int
    trials_spent: int
    records_added: int
    elapsed_s: float
    stopped: Literal["done", "trials", "time", "interrupted"]
    notes: list[str] = field(default_factory=list)

    @property
    def tasks_in_database(self) -> int:
        return sum(1 for t in self.tasks if t.status == "in-database")


@dataclass
class TuneEvent:
    """What the progress display shows after each measured batch (or task change)."""

    task_index: int
    tasks: int
    task: str
    trials_spent: int
    trials_budget: int
    task_best_ms: float | None
    elapsed_s: float
    time_budget_s: float | None


class _TimeUp(Exception):
    pass


def plan_trials(shares: list[float], budget: int) -> list[int]:
    """Trials per task: proportional to its share, at least MIN_TRIALS_PER_TASK while the budget lasts."""
    if budget <= 0 or not shares:
        return [0] * len(shares)
    total = sum(shares) or 1.0
    order = sorted(range(len(shares)), key=lambda i: -shares[i])
    left = budget
    out = [0] * len(shares)
    for i in order:
        want = max(MIN_TRIALS_PER_TASK, math.floor(budget * shares[i] / total))
        out[i] = min(want, left)
        left -= out[i]
    # Rounding down leaves a few trials: give them to the largest tasks.
    for i in order:
        if left <= 0:
            break
        if out[i] > 0:
            out[i] += 1
            left -= 1
    return out


def tune_model(
    model: PreparedModel,
    target: Target,
    *,
    trials: int,
    time_budget_s: float | None = None,
    db_dir: str | os.PathLike[str] | None = None,
    rpc: RpcAddress | None = None,
    threads: int | None = None,
    on_event: Callable[[TuneEvent], None] | None = None,
    on_plan: Callable[[list[TaskPlan]], None] | None = None,
    seed: int = 0,
) -> TuneResult:
    """Tune ``model`` for ``target`` with at most ``trials`` measured candidates and ``time_budget_s``.

    Measures here (``rpc`` None; only for this machine's architecture) or on the boards behind an RPC
    tracker. Records are merged into the database for the target's fingerprint under ``db_dir``.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    from ..backends.base import local_threads
    from ..backends.tvm import lowering
    from ..backends.tvm.run import set_runtime_threads
    from ..errors import BadInputError, BackendUnavailable

    if trials < 0:
        raise BadInputError("--trials must be >= 0")
    settings = target.tvm
    if settings is None:
        raise BadInputError(f"target {target.name} has no TVM settings")
    if rpc is None:
        from ..backends.tvm.compile import target_arch
        import platform

        if target_arch(target) != platform.machine():
            raise BackendUnavailable(
                f"tuning for {target.name} ({target_arch(target)}) measures on the board: give --device "
                "rpc://TRACKER:PORT/KEY (a TVM RPC tracker with the board registered under KEY)"
            )
        # The runner's workers inherit this; MetaSchedule measures with the threads the model will use.
        set_runtime_threads(threads or local_threads(settings.num_cores))
    else:
        from ..remote.rpc import probe

        if not rpc.key:
            raise BadInputError(f"tuning over RPC needs a tracker and a device key: rpc://TRACKER:PORT/KEY (got {rpc.url})")
        probe(rpc)  # a tracker that is not there fails now, not after every batch
    db = TuningDatabase.for_target(settings, db_dir)
    t0 = time.monotonic()
    tvm_target = lowering.make_target(settings.to_tvm_dict())
    lowering.load_cpu_tensor_intrinsics()
    fused = lowering.fuse(lowering.import_onnx(model), tvm_target)
    tasks = ms.relax_integration.extract_tasks(fused, tvm_target)
    existing = db.load()

    plans: list[TaskPlan] = []
    for task in tasks:
        flops = float(_flops(task.dispatched[0]))
        plans.append(TaskPlan(task.task_name, int(task.weight), flops, 0.0, 0))
    work = [p.flops * p.weight for p in plans]
    total_work = sum(work) or 1.0
    for p, w in zip(plans, work):
        p.share = w / total_work
    # The budget is planned over every tunable task, then tasks the database holds keep their share
    # unspent: the same command run twice spends nothing the second time, and a larger budget goes
    # to the tasks that did not get one before.
    tunable = [i for i, t in enumerate(tasks) if not (t.mod.attrs is not None and t.mod.attrs.get(lowering.SCHEDULED_ATTR, False))]
    pending = []
    for i, b in zip(tunable, plan_trials([plans[i].share for i in tunable], trials)):
        if _has_valid_record(existing, tasks[i].dispatched[0]):
            plans[i].status = "in-database"
        elif b == 0:
            plans[i].status = "skipped"
        else:
            plans[i].trials = b
            pending.append(i)
    for i in set(range(len(tasks))) - set(tunable):
        plans[i].status = "skipped"
    if on_plan is not None:
        on_plan(plans)

    session_dir = Path(tempfile.mkdtemp(prefix="edgecc-tune-"))
    session_db = json_database(session_dir / "db")
    spent = 0
    stopped: Literal["done", "trials", "time", "interrupted"] = "done"
    order = sorted((i for i in pending if plans[i].trials > 0), key=lambda i: -plans[i].share)
    current = {"index": 0}
    time_up = {"hit": False}

    def emit(plan: TaskPlan) -> None:
        if on_event is not None:
            on_event(TuneEvent(current["index"], len(order), plan.name, spent, trials, plan.best_ms,
                               time.monotonic() - t0, time_budget_s))

    @derived_object
    class _Progress(ms.measure_callback.PyMeasureCallback):
        """Counts trials and the best time of the task being tuned; stops at the time budget."""

        def __init__(self, plan: TaskPlan):
            super().__init__()
            self.plan = plan

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            nonlocal spent
            spent += len(runner_results)
            self.plan.trials_spent += len(runner_results)
            for r in runner_results:
                if r.run_secs:
                    ms_ = 1000.0 * sum(float(s) for s in r.run_secs) / len(r.run_secs)
                    if ms_ < FAILED_RUN_SECS * 1000 and (self.plan.best_ms is None or ms_ < self.plan.best_ms):
                        self.plan.best_ms = ms_
            emit(self.plan)
            if time_budget_s is not None and time.monotonic() - t0 > time_budget_s:
                # An exception is the only way out of MetaSchedule's loop; it reaches the caller as a
                # plain RuntimeError through TVM's FFI, so the flag says why.
                time_up["hit"] = True
                raise _TimeUp()

    try:
        for n, i in enumerate(order):
            current["index"] = n
            plan = plans[i]
            if time_budget_s is not None and time.monotonic() - t0 > time_budget_s:
                stopped = "time"
                break
            emit(plan)
            ctx = ms.TuneContext(
                mod=tasks[i].dispatched[0], target=tvm_target, space_generator="post-order-apply",
                search_strategy=_strategy(plan.trials), task_name=plan.name, rand_state=seed + i,
                num_threads="physical",
            )
            try:
                ms.tune_tasks(
                    tasks=[ctx], task_weights=[1.0], work_dir=str(session_dir / "logs"),
                    max_trials_global=plan.trials, max_trials_per_task=plan.trials,
                    num_trials_per_iter=min(MAX_BATCH, plan.trials),
                    builder=_builder(target, rpc),
                    runner=_runner(rpc),
                    database=session_db,
                    cost_model="xgb",
                    measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), _Progress(plan)],
                    task_scheduler="round-robin",
                )
                plan.status = "tuned" if plan.best_ms is not None else "failed"
                if plan.best_ms is None:
                    plan.error = "no candidate measured successfully"
            except Exception as e:  # MetaSchedule reports any failure as a plain exception through the FFI
                if time_up["hit"]:
                    plan.status = "tuned" if plan.best_ms is not None else "interrupted"
                    stopped = "time"
                    break
                if "KeyboardInterrupt" in f"{type(e).__name__}: {e}":  # Ctrl-C inside a callback, wrapped by the FFI
                    raise KeyboardInterrupt from None
                # One task failing is data in the result (status, error), not the end of the run.
                lines = [l for l in str(e).strip().splitlines() if l.strip()]
                plan.status, plan.error = "failed", (lines[-1] if lines else type(e).__name__)[:300]
        else:
            if spent >= trials and any(p.status == "skipped" for p in plans):
                stopped = "trials"
    except KeyboardInterrupt:
        stopped = "interrupted"
        for p in plans:
            if p.status == "pending":
                p.status = "interrupted"
    finally:
        added = db.merge(session_db) if session_db.get_all_tuning_records() else 0
        shutil.rmtree(session_dir, ignore_errors=True)
    for p in plans:
        if p.status == "pending":
            p.status = "skipped"
    return TuneResult(
        database=str(db.path), fingerprint=db.fingerprint, tasks=plans, trials_budget=trials, trials_spent=spent,
        records_added=added, elapsed_s=time.monotonic() - t0, stopped=stopped,
    )


def _strategy(trials: int):
    """Evolutionary search with a population scaled to the task's budget: the default 512 candidates
    cost minutes of sampling and cost-model scoring per batch on 2 cores, wasted on an 8-trial task."""
    from tvm.s_tir import meta_schedule as ms

    population = max(64, min(512, 8 * trials))
    return ms.search_strategy.EvolutionarySearch(
        population_size=population, init_min_unmeasured=min(50, population // 2), genetic_num_iters=2 if trials < 64 else 4,
    )


def _flops(mod) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return max(1.0, float(estimate_tir_flops(mod)))
    except Exception:  # functions the estimator cannot analyse (opaque calls): count them as small
        return 1.0


def _has_valid_record(db, mod) -> bool:
    if not db.has_workload(mod):
        return False
    top = db.get_top_k(db.commit_workload(mod), 1)
    return bool(top) and all(float(s) < FAILED_RUN_SECS for s in top[0].run_secs)


def export_cross_aarch64(mod) -> str:
    """MetaSchedule builder export for aarch64 boards: a shared library linked here with the cross
    compiler (the default export is a tar of objects the board would have to link itself)."""
    from tvm.support.cc import cross_compiler

    path = os.path.join(tempfile.mkdtemp(prefix="edgecc-ms-"), "candidate.so")
    mod.export_library(path, fcompile=cross_compiler("aarch64-linux-gnu-g++"))
    return path


def _builder(target: Target, rpc: RpcAddress | None):
    import platform

    from tvm.s_tir import meta_schedule as ms

    from ..backends.tvm.compile import linker_for, target_arch

    if rpc is not None and target_arch(target) == "aarch64" and platform.machine() != "aarch64":
        linker_for(target)  # fails with the install command when the cross compiler is missing
        return ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT_S, f_export=export_cross_aarch64)
    return ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT_S)


def _runner(rpc: RpcAddress | None):
    from tvm.s_tir import meta_schedule as ms

    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50, enable_cpu_cache_flush=False)
    if rpc is None:
        return ms.runner.LocalRunner(timeout_sec=RUN_TIMEOUT_S, evaluator_config=evaluator)
    from ..errors import BadInputError

    if not rpc.key:
        raise BadInputError(
            f"tuning over RPC needs a tracker and a device key: rpc://TRACKER:PORT/KEY (got {rpc.url})"
        )
    config = ms.runner.RPCConfig(
        tracker_host=rpc.host, tracker_port=rpc.port, tracker_key=rpc.key, session_timeout_sec=max(60, RUN_TIMEOUT_S * 4),
    )
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator)
