"""Build a TensorRT engine on this machine's GPU: ONNX parser -> network -> builder config -> engine.

The artifact holds model.engine (the serialised engine) and engine.json (GPU, compute capability,
TensorRT and CUDA versions it was built with, build time, timing cache used). Runs only where
``TensorRtBackend.availability()`` found the full tensorrt package and a CUDA device.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import UnsupportedError
from ..base import BackendOptions, CompileOutput, Compiler, unavailable
from .config import apply_build_plan, model_facts, plan_build
from .device import GpuInfo, current_gpu, probe_cuda
from .engine import ENGINE_FILE, EngineInfo, write_engine_info
from .timing_cache import load_timing_cache, save_timing_cache, timing_cache_path

if TYPE_CHECKING:
    from ...graph.io import PreparedModel
    from ...targets import Target
    from . import TensorRtOptions


def make_logger(trt):  # noqa: ANN001
    """A tensorrt.ILogger that keeps warnings and errors, so failures can be reported with TensorRT's words."""

    class KeptLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[object, str]] = []

        def log(self, severity, msg):  # noqa: ANN001
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                self.messages.append((severity, msg))

        def errors(self) -> list[str]:
            return [m for s, m in self.messages if int(s) <= int(trt.ILogger.Severity.ERROR)]

    return KeptLogger()


def parser_errors(parser) -> list[str]:  # noqa: ANN001
    found = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        where = ""
        if hasattr(e, "node_name") and e.node_name():
            where = f" at node {e.node_name()} ({e.node_operator()})"
        found.append(f"{e.desc()}{where}")
    return found


def relax_ranged_inputs(model, ranges) -> None:  # noqa: ANN001 - onnx_ir.Model, dict[str, ShapeRange]
    """Make the dimensions that vary within a shape range dynamic, so TensorRT builds a profile for them.

    The static shapes inferred for every other value would contradict the dynamic inputs, so they are
    dropped (types kept): TensorRT infers shapes itself.
    """
    import onnx_ir as ir

    relaxed = False
    for value in model.graph.inputs:
        rng = ranges.get(value.name)
        if rng is None or value.shape is None:
            continue
        dims = [d if lo == hi else ir.SymbolicDim(f"{value.name}_dim{i}")
                for i, (d, lo, hi) in enumerate(zip(value.shape, rng.min, rng.max))]
        relaxed |= any(isinstance(d, ir.SymbolicDim) for d in dims)
        value.shape = ir.Shape(dims)
    if relaxed:
        for node in model.graph.all_nodes():
            for out in node.outputs:
                out.shape = None


def check_target_matches_gpu(target: Target, gpu: GpuInfo) -> None:
    """Refuse to build for ``target`` on a GPU of another compute capability: the engine would not run there."""
    wanted = target.tensorrt.compute_capability if target.tensorrt else None
    if wanted != gpu.compute_capability:
        raise UnsupportedError(
            f"target {target.name} has compute capability {wanted}, the GPU here is {gpu.name} "
            f"({gpu.compute_capability}): a TensorRT engine runs only on the GPU it was built on; build on the "
            "device itself (edgecc installed there, or --device ssh://user@host), or pick the target of this GPU"
        )


class TensorRtCompiler(Compiler):
    def compile(
        self, model: PreparedModel, target: Target, precision: str, options: BackendOptions, out_dir: Path
    ) -> CompileOutput:
        import tensorrt as trt

        from ...graph.io import save_model

        opts: TensorRtOptions = options  # type: ignore[assignment]
        gpu = current_gpu()
        if gpu is None:
            raise unavailable("tensorrt", f"no CUDA device here ({probe_cuda().describe()})")
        check_target_matches_gpu(target, gpu)
        plan = plan_build(opts, target, precision, model_facts(model.model, model.inputs))

        logger = make_logger(trt)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10+
        parser = trt.OnnxParser(network, logger)
        with tempfile.TemporaryDirectory(prefix="edgecc-trt-") as tmp:
            if opts.shape_ranges:
                import onnx_ir as ir

                relaxed = ir.from_proto(ir.to_proto(model.model))
                relax_ranged_inputs(relaxed, opts.shape_ranges)
                path = save_model(relaxed, Path(tmp) / "model.onnx")
            else:
                path = save_model(model.model, Path(tmp) / "model.onnx")
            # parse_from_file resolves external weights next to the file; keep it until the build is done.
            if not parser.parse_from_file(str(path)):
                raise UnsupportedError(f"{model.source}: TensorRT's ONNX parser failed: {'; '.join(parser_errors(parser)) or 'no detail'}")
            config = builder.create_builder_config()
            cache_file = timing_cache_path(gpu, trt.__version__) if opts.timing_cache else None
            before = load_timing_cache(cache_file) if cache_file else None
            notes = list(plan.notes)
            try:
                cache = apply_build_plan(trt, builder, config, plan, before)
            except (RuntimeError, TypeError) as e:  # an unreadable cache file: start an empty one
                if cache_file is None:
                    raise
                notes.append(f"timing cache {cache_file.name} was unreadable ({e}); started an empty one")
                before = b""
                config = builder.create_builder_config()
                cache = apply_build_plan(trt, builder, config, plan, before)
            t0 = time.perf_counter()
            serialized = builder.build_serialized_network(network, config)
            build_s = time.perf_counter() - t0
        if serialized is None:
            detail = "; ".join(logger.errors()[-3:]) or "no detail from TensorRT"
            raise UnsupportedError(f"{model.source}: TensorRT could not build an engine for {gpu.name}: {detail}")
        (out_dir / ENGINE_FILE).write_bytes(bytes(serialized))
        after = b""
        if cache_file is not None and cache is not None:
            merged = config.get_timing_cache()
            latest = load_timing_cache(cache_file)
            if latest and latest != before:  # another build saved meanwhile: keep its entries too
                merged.combine(config.create_timing_cache(latest), False)
            after = bytes(merged.serialize())
            save_timing_cache(cache_file, after)
        probe = probe_cuda()
        write_engine_info(out_dir, EngineInfo(
            gpu_name=gpu.name, compute_capability=gpu.compute_capability, integrated=gpu.integrated,
            tensorrt_version=trt.__version__, cuda_driver_version=probe.driver_version, dla_core=plan.dla_core,
            builder_flags=list(plan.set_flags), build_s=round(build_s, 3),
            timing_cache=cache_file.name if cache_file else None,
            timing_cache_bytes_before=len(before or b""), timing_cache_bytes_after=len(after),
        ))
        notes.append(f"engine built on {gpu.name} ({gpu.sm}) with TensorRT {trt.__version__} in {build_s:.2f} s"
                     + (f"; timing cache {len(before or b'')} -> {len(after)} bytes" if cache_file else "; no timing cache"))
        resolved = opts.model_copy(update={"workspace_mib": plan.workspace_bytes >> 20})
        return CompileOutput(options=resolved, passes=["tensorrt-onnx-parser", "tensorrt-build-engine"], notes=notes)
