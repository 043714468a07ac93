"""From a prepared ONNX model to a TVM Relax executable: import, legalize and fuse, schedule, build.

One path serves compile and tuning, so the fused functions MetaSchedule tunes are exactly the ones the
compile looks up in the database. Every fused function gets a schedule from one of three sources, in
this order: a tuned record from the database (when given), a schedule drawn from MetaSchedule's
default rules for the target ("sampled": the first valid draw; "measured": the fastest of a few), or
none at all ("naive": TVM's plain loops, single-threaded and unvectorised).

A fourth, "measured", draws a few schedules per function, times them and the plain loops here and
keeps the fastest. ResNet-18 on the shared 2-core Zen 4 host, as a fraction of onnxruntime's speed in
the same run (benchmarks/results/tvm-host.md): naive 0.03x, sampled 0.06x (one draw can also be slower
than the plain loops: it is not measured), measured 0.46x (~200 s of compile), 256 tuning trials
0.88x. Measuring needs this machine's CPU, so cross-compiled targets get sampled schedules. TVM's
"default" relax pipeline adds no CPU schedule (as slow as naive) and dlight has CPU rules only for
GEMV and reductions, so neither is offered.

``tvm`` is imported by the callers' callers only (the backend imports this module lazily).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import tvm
import tvm_ffi
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from ...errors import UnsupportedError

if TYPE_CHECKING:
    from ...graph.io import PreparedModel

Schedule = Literal["measured", "sampled", "naive"]
# Draws per function in "measured" mode; each is built and timed here, with the plain loops as a candidate.
MEASURED_DRAWS = 4
SCHEDULED_ATTR = "tirx.is_scheduled"
# Sampled schedules are drawn with a fixed seed so the same model compiles to the same code.
_SEED = 20261121
# A draw whose postprocessors reject it (e.g. a vector length the loop cannot take) is redrawn.
_MAX_DRAWS = 8


def make_target(tvm_dict: dict[str, object]) -> tvm.target.Target:
    return tvm.target.Target(tvm_dict)


def load_cpu_tensor_intrinsics() -> None:
    """Register only the CPU (x86, ARM) tensor intrinsics MetaSchedule's CPU rules use.

    MetaSchedule's TuneContext imports tvm.s_tir.tensor_intrin, which builds every intrinsic TVM has:
    CUDA's alone take 36 s here (ROCm 7 s, Hexagon 2 s) against 4 s for x86 + ARM. The package is
    entered as an empty module with its real path, so any other intrinsic module still imports on demand.
    """
    import importlib
    import importlib.util
    import sys
    import types

    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType(name)
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = name
    sys.modules[name] = package
    for sub in ("x86", "arm_cpu"):
        setattr(package, sub, importlib.import_module(f"{name}.{sub}"))


def import_onnx(model: PreparedModel) -> tvm.IRModule:
    """The Relax module of ``model`` (static shapes, weights embedded as constants)."""
    from tvm.relax.frontend.onnx import from_onnx

    from ...graph.io import to_proto

    proto = to_proto(model.model)
    shapes = {s.name: list(s.shape) for s in model.inputs}
    dtypes = {s.name: s.dtype for s in model.inputs}
    try:
        return from_onnx(proto, shape_dict=shapes, dtype_dict=dtypes, keep_params_in_input=False)
    except Exception as e:  # the frontend raises bare exceptions for ops/attributes it cannot convert
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedError(f"{model.source}: TVM's ONNX frontend cannot import it: {first}") from None


def fuse(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Library dispatch, legalization and operator fusion: the module MetaSchedule extracts tasks from."""
    from tvm.relax.backend.cpu_generic import pipeline as rp

    with target:
        seq = rp.library_dispatch_passes(target) + rp.legalize_passes(target)
        return tvm.transform.Sequential(seq)(mod)


def apply_database(mod: tvm.IRModule, target: tvm.target.Target, database: ms.Database) -> tvm.IRModule:
    """Replace each fused function that ``database`` holds a valid record for by its tuned schedule."""
    with target, database, tvm.transform.PassContext(opt_level=3):
        return relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)


@dataclass
class ScheduleReport:
    tuned: int = 0
    sampled: int = 0
    naive: int = 0


def unscheduled_functions(mod: tvm.IRModule) -> list[tuple[tvm.ir.GlobalVar, tvm.tirx.PrimFunc]]:
    out = []
    for gv, func in mod.functions_items():
        if isinstance(func, tvm.tirx.PrimFunc) and not (func.attrs is not None and func.attrs.get(SCHEDULED_ATTR, False)):
            out.append((gv, func))
    return out


def sample_schedules(mod: tvm.IRModule, target: tvm.target.Target, *, measure: bool = False) -> tuple[tvm.IRModule, int]:
    """Give every unscheduled fused function a schedule drawn from MetaSchedule's default rules.

    Without ``measure``: the first valid draw, unmeasured (works for any target). With ``measure``
    (only for this machine's CPU): MEASURED_DRAWS draws and the plain loops are built and timed here,
    and the fastest is kept. Returns the module and how many functions got a drawn schedule; functions
    with no valid draw, or whose plain loops measured fastest, keep their plain loops.
    """
    cache: dict[int, tvm.tirx.PrimFunc | None] = {}
    count = 0
    updates = {}
    for gv, func in unscheduled_functions(mod):
        key = tvm_ffi.structural_hash(func.with_attr("global_symbol", "main"))
        if key not in cache:
            cache[key] = _measure_best(func, target) if measure else _sample_one(func, target)
        scheduled = cache[key]
        if scheduled is None:
            continue
        attrs = dict(func.attrs) if func.attrs is not None else {}
        # The sampled function was named "main" for MetaSchedule; fused functions get their symbol
        # later (AttachGlobalSymbol), and a leftover "main" on every one would make them collide.
        new = scheduled if "global_symbol" in attrs else scheduled.without_attr("global_symbol")
        for k, v in attrs.items():
            new = new.with_attr(k, v)
        updates[gv] = new.with_attr(SCHEDULED_ATTR, True)
        count += 1
    for gv, func in updates.items():
        mod[gv] = func
    return mod, count


def _sample_one(func: tvm.tirx.PrimFunc, target: tvm.target.Target) -> tvm.tirx.PrimFunc | None:
    load_cpu_tensor_intrinsics()
    ctx = ms.TuneContext(
        mod=func.with_attr("global_symbol", "main"), target=target, space_generator="post-order-apply",
        search_strategy="replay-trace", task_name="sample", rand_state=_SEED, num_threads=1,
    )
    for _ in range(_MAX_DRAWS):
        for sch in ctx.generate_design_space():
            if all(p.apply(sch) for p in ctx.space_generator.postprocs):
                return sch.mod["main"]
    return None


def _draws(func: tvm.tirx.PrimFunc, target: tvm.target.Target, count: int) -> list[tvm.tirx.PrimFunc]:
    load_cpu_tensor_intrinsics()
    ctx = ms.TuneContext(
        mod=func.with_attr("global_symbol", "main"), target=target, space_generator="post-order-apply",
        search_strategy="replay-trace", task_name="sample", rand_state=_SEED, num_threads=1,
    )
    found: list[tvm.tirx.PrimFunc] = []
    for _ in range(count * 2):
        for sch in ctx.generate_design_space():
            if all(p.apply(sch) for p in ctx.space_generator.postprocs):
                found.append(sch.mod["main"])
                break
        if len(found) >= count:
            break
    return found


def _time_ms(func: tvm.tirx.PrimFunc, target: tvm.target.Target) -> float:
    """Median time of ``func`` here on zero-filled arguments (ms); inf when it does not build."""
    import numpy as np

    dev = tvm.cpu()
    try:
        lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=target)
    except Exception:  # a draw the code generator rejects is not a candidate
        return float("inf")
    args = [tvm.runtime.tensor(np.zeros([int(d) for d in a.shape], a.dtype), dev)
            for a in ms.arg_info.ArgInfo.from_prim_func(func)]
    evaluator = lib.mod.time_evaluator("main", dev, number=1, repeat=3)
    return float(np.median(evaluator(*args).results)) * 1000.0


def _measure_best(func: tvm.tirx.PrimFunc, target: tvm.target.Target) -> tvm.tirx.PrimFunc | None:
    best, best_ms = None, _time_ms(func, target)
    for draw in _draws(func, target, MEASURED_DRAWS):
        ms_ = _time_ms(draw, target)
        if ms_ < best_ms:
            best, best_ms = draw, ms_
    return best


def lower_and_build(mod: tvm.IRModule, target: tvm.target.Target) -> relax.VMExecutable:
    """Finish a fused, scheduled module: dataflow lowering, memory planning, codegen."""
    # The CPU pass lists directly: tvm.relax.pipeline.dataflow_lower_passes names a function the
    # cpu_generic package does not export in 0.27 (AttributeError).
    from tvm.relax.backend.cpu_generic import pipeline as rp

    @tvm.transform.module_pass(opt_level=0)
    def _finish(m: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        with target:
            return tvm.transform.Sequential(rp.dataflow_lower_passes(target) + rp.finalize_passes(target))(m)

    with tvm.transform.PassContext(opt_level=3):
        return tvm.compile(mod, target=target, relax_pipeline=_finish)


def build(
    model: PreparedModel,
    target: tvm.target.Target,
    *,
    schedule: Schedule,
    database: ms.Database | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[relax.VMExecutable, ScheduleReport]:
    """Compile ``model`` for ``target``; returns the executable and where its schedules came from."""
    say = progress or (lambda _msg: None)
    say("importing the ONNX model")
    mod = fuse(import_onnx(model), target)
    total = len(unscheduled_functions(mod))
    report = ScheduleReport()
    if database is not None:
        mod = apply_database(mod, target, database)
        report.tuned = total - len(unscheduled_functions(mod))
    if schedule in ("sampled", "measured"):
        say("sampling default schedules" + (" (measured here)" if schedule == "measured" else ""))
        mod, report.sampled = sample_schedules(mod, target, measure=schedule == "measured")
    report.naive = len(unscheduled_functions(mod))
    say("building")
    return lower_and_build(mod, target), report
