"""TensorRT's build settings: edgecc's options, the target and the model turned into a BuildPlan
(pure data, decided without TensorRT), then applied to a tensorrt.IBuilderConfig.

Keeping the decision apart from the calls lets every rule be tested on a machine without a GPU;
``apply_build_plan`` is the only place that calls the builder-config API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...errors import BadInputError, UnsupportedError
from ..base import BackendOptions

if TYPE_CHECKING:
    import onnx_ir as ir

    from ...graph.io import TensorSpec
    from ...targets import Target

#: model metadata_props key that says which structured sparsity the weights follow ("2:4")
SPARSITY_KEY = "edgecc.sparsity"
SPARSITY_2_4 = "2:4"
_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


class ShapeRange(BaseModel):
    """The smallest and largest shape an input of the engine accepts; the artifact's shape is the optimum."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min: tuple[int, ...]
    max: tuple[int, ...]


class TensorRtOptions(BackendOptions):
    workspace_mib: int | None = Field(
        None, ge=16, description="builder workspace limit (MiB); default: the target's tensorrt.workspace_mib"
    )
    builder_optimization_level: int = Field(
        3, ge=0, le=5, description="TensorRT's builder optimisation level: higher searches more tactics, builds slower"
    )
    dla_core: int | None = Field(None, ge=0, description="run on this DLA core (Jetson Xavier/AGX Orin); default: the GPU")
    gpu_fallback: bool = Field(True, description="with dla_core: layers the DLA cannot run fall back to the GPU")
    sparse_weights: Literal["auto", "on", "off"] = Field(
        "auto", description=f"2:4 sparse tensor-core kernels; auto: when the model's metadata {SPARSITY_KEY} is 2:4"
    )
    tf32: bool = Field(False, description="fp32 builds may use TF32 tensor cores (TensorRT's own default is on)")
    timing_cache: bool = Field(True, description="reuse and extend the timing cache kept per (GPU, TensorRT version)")
    shape_ranges: dict[str, ShapeRange] = Field(
        default_factory=dict,
        description="input -> {min, max}: build an optimisation profile so the engine takes any shape in the range",
    )


@dataclass(frozen=True)
class ModelFacts:
    """What the build settings depend on in the model."""

    inputs: tuple[TensorSpec, ...]
    has_qdq: bool
    sparsity: str | None  # the model's metadata value for SPARSITY_KEY


def model_facts(model: ir.Model, inputs: list[TensorSpec]) -> ModelFacts:
    has_qdq = any(n.op_type in _QDQ_OPS for n in model.graph.all_nodes())
    sparsity = model.metadata_props.get(SPARSITY_KEY)
    return ModelFacts(tuple(inputs), has_qdq, sparsity.strip() if sparsity is not None else None)


@dataclass(frozen=True)
class ProfileShape:
    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class BuildPlan:
    """Everything the builder config gets, by name (BuilderFlag members), before TensorRT is touched."""

    set_flags: tuple[str, ...]
    clear_flags: tuple[str, ...]
    workspace_bytes: int
    optimization_level: int
    dla_core: int | None
    profiles: tuple[ProfileShape, ...]
    notes: tuple[str, ...] = field(default=())


def compute_capability(cc: str) -> tuple[int, int]:
    major, _, minor = cc.partition(".")
    return int(major), int(minor or 0)


def plan_build(options: TensorRtOptions, target: Target, precision: str, facts: ModelFacts) -> BuildPlan:
    """Decide the builder settings; raise a clear error for a request that cannot be built."""
    settings = target.tensorrt
    if settings is None:
        raise UnsupportedError(f"target {target.name} has no tensorrt settings")
    cc = compute_capability(settings.compute_capability)
    set_flags: list[str] = []
    clear_flags: list[str] = []
    notes: list[str] = []

    if precision == "fp32":
        if not options.tf32:
            clear_flags.append("TF32")  # on by default in TensorRT: FP32 asked means FP32 computed
    elif precision == "fp16":
        set_flags.append("FP16")
    elif precision == "int8":
        if not facts.has_qdq:
            raise UnsupportedError(
                "tensorrt int8 needs a quantised (QDQ) model: explicit quantisation only, TensorRT's implicit "
                "calibration is not used; quantise the model first (QuantizeLinear/DequantizeLinear pairs)"
            )
        set_flags += ["INT8", "FP16"]
        notes.append("int8 from the model's Q/DQ scales; layers left unquantised may run in fp16")
    else:
        raise UnsupportedError(f"backend tensorrt does not build {precision}; it builds fp32, fp16 and int8")

    dla_core = options.dla_core
    if dla_core is not None:
        if settings.dla_cores == 0:
            raise UnsupportedError(f"target {target.name} has no DLA cores; drop the dla_core option")
        if dla_core >= settings.dla_cores:
            raise BadInputError(f"dla_core {dla_core}: target {target.name} has DLA cores 0-{settings.dla_cores - 1}")
        if precision == "fp32":
            raise UnsupportedError("the DLA computes in fp16 or int8 only; use --precision fp16 or int8 with dla_core")
        if options.gpu_fallback:
            set_flags.append("GPU_FALLBACK")
        else:
            notes.append("no GPU fallback: the build fails if a layer cannot run on the DLA")

    sparse = options.sparse_weights == "on" or (options.sparse_weights == "auto" and facts.sparsity == SPARSITY_2_4)
    if facts.sparsity is not None and facts.sparsity != SPARSITY_2_4:
        notes.append(f"model metadata {SPARSITY_KEY}={facts.sparsity!r}: only 2:4 sparsity has TensorRT kernels; dense build")
    if sparse:
        if cc < (8, 0):
            notes.append(f"2:4 sparse weights ignored: sparse tensor cores need compute capability 8.0+, target has {settings.compute_capability}")
        else:
            set_flags.append("SPARSE_WEIGHTS")
            if facts.sparsity != SPARSITY_2_4:
                notes.append(f"sparse_weights=on without {SPARSITY_KEY}=2:4: TensorRT uses sparse kernels only where weights are 2:4")

    specs = {s.name: s for s in facts.inputs}
    profiles = []
    for name, rng in options.shape_ranges.items():
        if name not in specs:
            raise BadInputError(f"shape_ranges: '{name}' is not an input of the model; inputs: {', '.join(specs)}")
        opt = tuple(specs[name].shape)
        if not (len(rng.min) == len(rng.max) == len(opt)):
            raise BadInputError(f"shape_ranges '{name}': min and max need {len(opt)} dimensions like the input {list(opt)}")
        if not all(lo <= o <= hi and lo >= 1 for lo, o, hi in zip(rng.min, opt, rng.max)):
            raise BadInputError(
                f"shape_ranges '{name}': need 1 <= min <= {list(opt)} (the artifact's shape) <= max, got min {list(rng.min)} max {list(rng.max)}"
            )
        profiles.append(ProfileShape(name, tuple(rng.min), opt, tuple(rng.max)))

    workspace_mib = options.workspace_mib or settings.workspace_mib
    return BuildPlan(
        set_flags=tuple(set_flags), clear_flags=tuple(clear_flags), workspace_bytes=workspace_mib << 20,
        optimization_level=options.builder_optimization_level, dla_core=dla_core, profiles=tuple(profiles),
        notes=tuple(notes),
    )


def apply_build_plan(trt, builder, config, plan: BuildPlan, timing_cache: bytes | None):  # noqa: ANN001 - tensorrt objects
    """Configure ``config`` (a tensorrt.IBuilderConfig) as ``plan`` says; returns the ITimingCache set, if any.

    ``timing_cache`` is a serialised cache (b"" starts an empty one); None builds without a cache.
    """
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.optimization_level
    # Layer names in the per-layer profile instead of indices.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    for name in plan.set_flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise UnsupportedError(
                f"TensorRT {trt.__version__} has no builder flag {name} (newer TensorRT builds strongly typed networks: "
                "the precision must then come from the model itself)"
            )
        config.set_flag(flag)
    for name in plan.clear_flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is not None:  # a flag that no longer exists cannot be on
            config.clear_flag(flag)
    if plan.dla_core is not None:
        present = int(getattr(builder, "num_DLA_cores", 0))
        if plan.dla_core >= present:
            raise UnsupportedError(f"dla_core {plan.dla_core}: this device has {present} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    if plan.profiles:
        profile = builder.create_optimization_profile()
        for p in plan.profiles:
            profile.set_shape(p.input, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
    cache = None
    if timing_cache is not None:
        cache = config.create_timing_cache(timing_cache)
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache
