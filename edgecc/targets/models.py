"""Target models: what edgecc knows about a device, as validated data.

A target is a discriminated union on ``kind`` (cpu, gpu, npu). Backend settings are typed per
backend; a backend serves a target only when the target carries that backend's settings.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Arch = Literal["x86_64", "aarch64"]
DeviceClass = Literal["server", "desktop", "laptop", "single-board-computer", "embedded-gpu", "accelerator", "cloud"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OnnxRuntimeSettings(_Strict):
    """onnxruntime on this target; ``intra_op_threads`` 0 means one per core of the target."""

    intra_op_threads: int = Field(0, ge=0)


class OpenVinoSettings(_Strict):
    device: Literal["CPU", "GPU", "NPU", "AUTO"] = "CPU"
    performance_hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"


class TvmTargetSettings(_Strict):
    """The TVM target as its JSON-dict fields (TVM 0.27 takes targets as dicts)."""

    kind: Literal["llvm", "cuda"] = "llvm"
    mtriple: str
    mcpu: str
    mattr: tuple[str, ...] = ()
    num_cores: int = Field(ge=1)

    def to_tvm_dict(self) -> dict[str, object]:
        """The dict ``tvm.target.Target`` accepts."""
        d: dict[str, object] = {"kind": self.kind, "mtriple": self.mtriple, "mcpu": self.mcpu, "num-cores": self.num_cores}
        if self.mattr:
            d["mattr"] = list(self.mattr)
        return d


class TensorRtSettings(_Strict):
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    dla_cores: int = Field(0, ge=0)
    workspace_mib: int = Field(1024, ge=16)


class _TargetBase(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    device_class: DeviceClass
    preferred_backend: str
    peak_fp32_gflops: float = Field(gt=0, description="published peak FP32 GFLOP/s (host: estimated, see peak_source)")
    peak_source: str = Field("published", description="where peak_fp32_gflops comes from")
    peak_int8_tops: float | None = Field(None, gt=0, description="published INT8 peak of an accelerator, TOPS")
    memory_bandwidth_gbs: float | None = Field(None, gt=0, description="peak DRAM bandwidth, GB/s (None: unknown)")
    memory_gib: float = Field(gt=0)
    device: str = Field("local", description="where it is reached: local, rpc://host:port[/key], ssh://user@host")
    onnxruntime: OnnxRuntimeSettings | None = None
    openvino: OpenVinoSettings | None = None
    tvm: TvmTargetSettings | None = None
    tensorrt: TensorRtSettings | None = None

    def settings_for(self, backend: str) -> _Strict | None:
        """This target's settings for ``backend``, or None when the target does not list that backend."""
        return getattr(self, backend, None) if backend in BACKEND_SETTINGS_FIELDS else None

    def backends(self) -> list[str]:
        """Backends this target lists settings for, preferred first."""
        listed = [b for b in BACKEND_SETTINGS_FIELDS if getattr(self, b) is not None]
        return sorted(listed, key=lambda b: b != self.preferred_backend)


class CpuTarget(_TargetBase):
    kind: Literal["cpu"] = "cpu"
    arch: Arch
    cpu: str = Field(description="the CPU model, e.g. 'Cortex-A72' or the host's model name")
    cores: int = Field(ge=1)
    isa: tuple[str, ...] = Field((), description="ISA extensions that matter for kernels: avx2, avx512f, avx512_vnni, amx_bf16, neon, dotprod...")


class GpuTarget(_TargetBase):
    kind: Literal["gpu"] = "gpu"
    arch: Arch = Field(description="the host CPU's architecture (Jetson: aarch64)")
    cpu: str
    cores: int = Field(ge=1, description="host CPU cores")
    gpu: str


class NpuTarget(_TargetBase):
    kind: Literal["npu"] = "npu"
    arch: Arch
    cpu: str
    cores: int = Field(ge=1, description="host CPU cores")
    npu: str


Target = Annotated[Union[CpuTarget, GpuTarget, NpuTarget], Field(discriminator="kind")]
TARGET_ADAPTER: TypeAdapter[Target] = TypeAdapter(Target)
BACKEND_SETTINGS_FIELDS = ("onnxruntime", "openvino", "tvm", "tensorrt")
