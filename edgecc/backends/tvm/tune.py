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
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ...errors import BackendUnavailable, BadInputError
from ...targets.host import local_threads
from ..base import TuneReport, TuneRequest, Tuner
from .database import FAILED_RUN_SECS, TuningDatabase, json_database
from .library import is_foreign, linker_for, set_runtime_threads, target_arch

if TYPE_CHECKING:
    from ...graph.io import PreparedModel
    from ...remote.device import RpcDevice
    from ...targets import Target
    from .settings import TvmTargetSettings

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
class TuneResult(TuneReport):
    """What a tuning run did, per task and in total; ``to_json`` is what ``edgecc tune --json`` writes."""

    database: str
    fingerprint: str
    tasks: list[TaskPlan]
    trials_budget: int
    trials_spent: int
    records_added: int
    elapsed_s: float
    stopped: Literal["done", "trials", "time", "interrupted"]
    notes: list[str] = field(default_factory=list)
    model: str = ""
    target: str = ""

    @property
    def tasks_in_database(self) -> int:
        return sum(1 for t in self.tasks if t.status == "in-database")

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model, "target": self.target, "database": self.database, "fingerprint": self.fingerprint,
            "trials_budget": self.trials_budget, "trials_spent": self.trials_spent, "records_added": self.records_added,
            "elapsed_s": round(self.elapsed_s, 2), "stopped": self.stopped,
            "tasks": [{"name": t.name, "weight": t.weight, "share": round(t.share, 4), "trials": t.trials,
                       "trials_spent": t.trials_spent, "status": t.status, "best_ms": t.best_ms, "error": t.error}
                      for t in self.tasks],
        }


@dataclass
class TunePlanned:
    """The first progress event: every task with its share, its trials and whether the database holds it."""

    tasks: list[TaskPlan]


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


class TvmTuner(Tuner):
    """The TVM backend's tune part: MetaSchedule into the lasting database its compiler applies (--tuned)."""

    def tune(self, model: PreparedModel, target: Target, request: TuneRequest) -> TuneResult:
        return tune_model(model, target, trials=request.trials, time_budget_s=request.time_budget_s,
                          db_dir=request.db_dir, rpc=request.device, on_progress=request.on_progress)


def tune_model(
    model: PreparedModel,
    target: Target,
    *,
    trials: int,
    time_budget_s: float | None = None,
    db_dir: str | os.PathLike[str] | None = None,
    rpc: RpcDevice | None = None,
    threads: int | None = None,
    on_progress: Callable[[TunePlanned | TuneEvent], None] | None = None,
    seed: int = 0,
) -> TuneResult:
    """Tune ``model`` for ``target`` with at most ``trials`` measured candidates and ``time_budget_s`` seconds.

    Measures here (``rpc`` None; only for this machine's architecture, with ``threads`` runtime threads,
    default the target's cores) or on the boards behind an RPC tracker. Records are merged into the
    database for the target's fingerprint under ``db_dir``. ``on_progress`` gets the plan (TunePlanned)
    once, then a TuneEvent after each measured batch.
    """
    settings = _check_where(target, trials, rpc, threads)
    db = TuningDatabase.for_target(settings, db_dir)
    t0 = time.monotonic()
    tvm_target, tasks = _extract_tasks(model, settings)
    plans = _plan_tasks(tasks, trials, db.load())
    if on_progress is not None:
        on_progress(TunePlanned(plans))
    session = _Session(tasks, plans, tvm_target, target, rpc, trials, time_budget_s, t0, on_progress, seed)
    added, stopped = session.run(db)
    for p in plans:
        if p.status == "pending":
            p.status = "skipped"
    return TuneResult(
        database=str(db.path), fingerprint=db.fingerprint, tasks=plans, trials_budget=trials,
        trials_spent=session.spent, records_added=added, elapsed_s=time.monotonic() - t0, stopped=stopped,
        model=model.source, target=target.name,
    )


def _check_where(target: Target, trials: int, rpc: RpcDevice | None, threads: int | None) -> TvmTargetSettings:
    """The target's TVM settings, once the request can be measured where it asks: here only for this
    machine's architecture (runtime threads set for the runner's workers), else a tracker that answers."""
    if trials < 0:
        raise BadInputError("--trials must be >= 0")
    settings = target.tvm
    if settings is None:
        raise BadInputError(f"target {target.name} has no TVM settings")
    if rpc is None:
        if is_foreign(target):
            raise BackendUnavailable(
                f"tuning for {target.name} ({target_arch(target)}) measures on the board: give --device "
                "rpc://TRACKER:PORT/KEY (a TVM RPC tracker with the board registered under KEY)"
            )
        # The runner's workers inherit this; MetaSchedule measures with the threads the model will use.
        set_runtime_threads(threads or local_threads(settings.num_cores))
    else:
        from .rpc import probe

        _require_tracker(rpc)
        probe(rpc)  # a tracker that is not there fails now, not after every batch
    return settings


def _require_tracker(rpc: RpcDevice) -> None:
    if not rpc.key:
        raise BadInputError(f"tuning over RPC needs a tracker and a device key: rpc://TRACKER:PORT/KEY (got {rpc.url})")


def _extract_tasks(model: PreparedModel, settings: TvmTargetSettings) -> tuple[object, list]:
    """The TVM target and MetaSchedule's tasks of ``model``, imported and fused exactly as the compile does."""
    from tvm.s_tir import meta_schedule as ms

    from . import lowering

    tvm_target = lowering.make_target(settings.to_tvm_dict())
    lowering.load_cpu_tensor_intrinsics()
    fused = lowering.fuse(lowering.import_onnx(model), tvm_target)
    return tvm_target, list(ms.relax_integration.extract_tasks(fused, tvm_target))


def _plan_tasks(tasks: list, trials: int, existing: object) -> list[TaskPlan]:
    """Each task's share of the work (FLOPs x occurrences) and trials; tasks ``existing`` (a MetaSchedule
    database) holds a valid record for are 'in-database', tasks left without trials 'skipped'."""
    from . import lowering

    plans = [TaskPlan(t.task_name, int(t.weight), float(_flops(t.dispatched[0])), 0.0, 0) for t in tasks]
    work = [p.flops * p.weight for p in plans]
    total_work = sum(work) or 1.0
    for p, w in zip(plans, work):
        p.share = w / total_work
    # The budget is planned over every tunable task, then tasks the database holds keep their share
    # unspent: the same command run twice spends nothing the second time, and a larger budget goes
    # to the tasks that did not get one before.
    tunable = [i for i, t in enumerate(tasks) if not (t.mod.attrs is not None and t.mod.attrs.get(lowering.SCHEDULED_ATTR, False))]
    for i, b in zip(tunable, plan_trials([plans[i].share for i in tunable], trials)):
        if _has_valid_record(existing, tasks[i].dispatched[0]):
            plans[i].status = "in-database"
        elif b == 0:
            plans[i].status = "skipped"
        else:
            plans[i].trials = b
    for i in set(range(len(tasks))) - set(tunable):
        plans[i].status = "skipped"
    return plans


class _Session:
    """One run's measuring: the planned tasks tuned one by one, largest share first, into a session
    database that is merged into the lasting one at the end, also on Ctrl-C or when time runs out."""

    def __init__(self, tasks: list, plans: list[TaskPlan], tvm_target: object, target: Target, rpc: RpcDevice | None,
                 trials: int, time_budget_s: float | None, t0: float,
                 on_progress: Callable[[TunePlanned | TuneEvent], None] | None, seed: int):
        self.tasks, self.plans, self.tvm_target, self.target, self.rpc = tasks, plans, tvm_target, target, rpc
        self.trials, self.time_budget_s, self.t0, self.on_progress, self.seed = trials, time_budget_s, t0, on_progress, seed
        self.order = sorted((i for i, p in enumerate(plans) if p.status == "pending" and p.trials > 0),
                            key=lambda i: -plans[i].share)
        self.index = 0
        self.spent = 0
        self.time_up = False
        self.interrupted = False  # Ctrl-C seen: stop after the batch being measured

    def over_time(self) -> bool:
        return self.time_budget_s is not None and time.monotonic() - self.t0 > self.time_budget_s

    def emit(self, plan: TaskPlan) -> None:
        if self.on_progress is not None:
            self.on_progress(TuneEvent(self.index, len(self.order), plan.name, self.spent, self.trials, plan.best_ms,
                                       time.monotonic() - self.t0, self.time_budget_s))

    def run(self, db: TuningDatabase) -> tuple[int, Literal["done", "trials", "time", "interrupted"]]:
        """(records added to ``db``, why the run stopped)."""
        session_dir = Path(tempfile.mkdtemp(prefix="edgecc-tune-"))
        session_db = json_database(session_dir / "db")
        stopped: Literal["done", "trials", "time", "interrupted"] = "done"
        restore = self._stop_on_sigint()
        try:
            stopped = self._tune_all(session_dir, session_db)
            if self.interrupted:
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            stopped = "interrupted"
            for p in self.plans:
                if p.status == "pending":
                    p.status = "interrupted"
        finally:
            restore()
            added = db.merge(session_db) if session_db.get_all_tuning_records() else 0
            shutil.rmtree(session_dir, ignore_errors=True)
        return added, stopped

    def _stop_on_sigint(self) -> Callable[[], None]:
        """A first Ctrl-C sets ``interrupted`` and the run stops after the batch being measured; raised inside
        TVM's C++ code it would come back as an unrelated error. A second Ctrl-C stops at once."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):  # noqa: ANN001, ARG001
            self.interrupted = True
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, on_sigint)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _tune_all(self, session_dir: Path, session_db: object) -> Literal["done", "trials", "time"]:
        callback_type = _progress_callback_type()
        for n, i in enumerate(self.order):
            self.index = n
            if self.interrupted:
                raise KeyboardInterrupt
            if self.over_time():
                return "time"
            if not self._tune_task(i, session_dir, session_db, callback_type(self, self.plans[i])):
                return "time"
        if self.spent >= self.trials and any(p.status == "skipped" for p in self.plans):
            return "trials"
        return "done"

    def _tune_task(self, i: int, session_dir: Path, session_db: object, progress: object) -> bool:
        """Tune task ``i`` with its planned trials; False when the time budget ran out during it."""
        from tvm.s_tir import meta_schedule as ms

        plan = self.plans[i]
        self.emit(plan)
        ctx = ms.TuneContext(
            mod=self.tasks[i].dispatched[0], target=self.tvm_target, space_generator="post-order-apply",
            search_strategy=_strategy(plan.trials), task_name=plan.name, rand_state=self.seed + i, num_threads="physical",
        )
        try:
            ms.tune_tasks(
                tasks=[ctx], task_weights=[1.0], work_dir=str(session_dir / "logs"),
                max_trials_global=plan.trials, max_trials_per_task=plan.trials,
                num_trials_per_iter=min(MAX_BATCH, plan.trials), builder=_builder(self.target, self.rpc),
                runner=_runner(self.rpc), database=session_db, cost_model="xgb",
                measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), progress],
                task_scheduler="round-robin",
            )
            plan.status = "tuned" if plan.best_ms is not None else "failed"
            if plan.best_ms is None:
                plan.error = "no candidate measured successfully"
        except Exception as e:  # MetaSchedule reports any failure as a plain exception through the FFI
            if self.time_up:
                plan.status = "tuned" if plan.best_ms is not None else "interrupted"
                return False
            if self.interrupted or "KeyboardInterrupt" in f"{type(e).__name__}: {e}":  # Ctrl-C inside a callback, wrapped by the FFI
                raise KeyboardInterrupt from None
            # One task failing is data in the result (status, error), not the end of the run.
            lines = [l for l in str(e).strip().splitlines() if l.strip()]
            plan.status, plan.error = "failed", (lines[-1] if lines else type(e).__name__)[:300]
        return True


def _progress_callback_type() -> type:
    """MetaSchedule's measure callback that counts a session's trials and its task's best time, and stops
    the run at the time budget (tvm is imported here, at tuning time)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class _Progress(ms.measure_callback.PyMeasureCallback):
        def __init__(self, session: _Session, plan: TaskPlan):
            super().__init__()
            self.session = session
            self.plan = plan

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            self.session.spent += len(runner_results)
            self.plan.trials_spent += len(runner_results)
            for r in runner_results:
                if r.run_secs:
                    ms_ = 1000.0 * sum(float(s) for s in r.run_secs) / len(r.run_secs)
                    if ms_ < FAILED_RUN_SECS * 1000 and (self.plan.best_ms is None or ms_ < self.plan.best_ms):
                        self.plan.best_ms = ms_
            self.session.emit(self.plan)
            if self.session.interrupted:
                raise KeyboardInterrupt
            if self.session.over_time():
                # An exception is the only way out of MetaSchedule's loop; it reaches the caller as a
                # plain RuntimeError through TVM's FFI, so the flag says why.
                self.session.time_up = True
                raise _TimeUp()

    return _Progress


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


def _builder(target: Target, rpc: RpcDevice | None):
    from tvm.s_tir import meta_schedule as ms

    if rpc is not None and target_arch(target) == "aarch64" and is_foreign(target):
        linker_for(target)  # fails with the install command when the cross compiler is missing
        return ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT_S, f_export=export_cross_aarch64)
    return ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT_S)


def _runner(rpc: RpcDevice | None):
    from tvm.s_tir import meta_schedule as ms

    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50, enable_cpu_cache_flush=False)
    if rpc is None:
        return ms.runner.LocalRunner(timeout_sec=RUN_TIMEOUT_S, evaluator_config=evaluator)
    _require_tracker(rpc)
    config = ms.runner.RPCConfig(
        tracker_host=rpc.host, tracker_port=rpc.port, tracker_key=rpc.key, session_timeout_sec=max(60, RUN_TIMEOUT_S * 4),
    )
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator)
