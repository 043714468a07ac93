"""TVM artifact: the model compiled by Relax into one shared library (code + weights), for the target's
CPU. aarch64 targets are cross-compiled here with Debian's g++-aarch64-linux-gnu."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BadInputError, UnsupportedError
from ..base import BackendOptions, CompileOutput, Compiler
from .library import LIBRARY_FILE, linker_for, target_arch
from .options import TvmOptions, resolve_options

if TYPE_CHECKING:
    from ...graph.io import PreparedModel
    from ...targets import Target


class TvmCompiler(Compiler):
    def compile(
        self, model: PreparedModel, target: Target, precision: str, options: BackendOptions, out_dir: Path
    ) -> CompileOutput:
        from . import lowering
        from .database import TuningDatabase

        opts: TvmOptions = options  # type: ignore[assignment]
        fcompile = linker_for(target)  # fail before the (long) build when the linker is missing
        if opts.schedule == "auto":
            # Measured on ResNet-18 here (benchmarks/results/tvm-host.md): measured draws 0.46x onnxruntime's
            # speed for ~200 s of compile, one unmeasured draw 0.06x for ~30 s, plain loops 0.03x.
            opts = opts.model_copy(update={"schedule": "measured" if fcompile is None else "sampled"})
        if opts.schedule == "measured" and fcompile is not None:
            raise UnsupportedError(
                f"schedule=measured times candidates on this machine; {target.name} is {target_arch(target)} code: "
                "use schedule=sampled, or tune on the board (edgecc tune --device)"
            )
        tvm_target = lowering.make_target(target.tvm.to_tvm_dict())  # type: ignore[union-attr]
        notes: list[str] = []
        database = None
        if opts.trials:
            from .tune import tune_model

            tuned = tune_model(model, target, trials=opts.trials, db_dir=opts.db)
            notes.append(f"tuned here: {tuned.trials_spent} of {opts.trials} trials in {tuned.elapsed_s:.0f} s "
                         f"({tuned.tasks_in_database} tasks already in the database)")
            opts = opts.model_copy(update={"tuned": True})
        if opts.tuned:
            db = TuningDatabase.for_target(target.tvm, opts.db)  # type: ignore[arg-type]
            valid = db.count_records()
            if valid == 0:
                raise BadInputError(
                    f"--tuned: the tuning database has no records for {target.name} ({db.path}); "
                    f"run: edgecc tune MODEL --target {target.name}" + (f" --db {opts.db}" if opts.db else "")
                )
            database = db.load_for_compile()
            notes.append(f"tuning database: {db.path} ({valid} valid records)")
        executable, report = lowering.build(model, tvm_target, schedule=opts.schedule, database=database)
        executable.export_library(str(out_dir / LIBRARY_FILE), fcompile=fcompile)
        how = "drawn from default rules, fastest of a few measured here" if opts.schedule == "measured" else "drawn from default rules"
        notes.append(f"fused functions: {report.tuned} tuned, {report.sampled} {how}, {report.naive} naive")
        passes = ["tvm-relax-onnx", "tvm-legalize-fuse"]
        if report.tuned:
            passes.append("tvm-metaschedule-apply-database")
        if report.sampled:
            passes.append("tvm-sampled-default-schedules")
        return CompileOutput(options=resolve_options(opts, target), passes=passes, notes=notes)
