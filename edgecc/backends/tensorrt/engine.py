"""The engine's own manifest (engine.json beside model.engine) and the check that refuses to load
an engine on a GPU or TensorRT it was not built for.

TensorRT engines are specific to the GPU model (compute capability) and the exact TensorRT version
that built them; loading one elsewhere fails deep inside TensorRT or, worse, runs wrong kernels.
edgecc checks first and says what to do instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...errors import ArtifactError
from .device import GpuInfo

ENGINE_FILE = "model.engine"
ENGINE_INFO = "engine.json"


class EngineInfo(BaseModel):
    """Where and how an engine was built."""

    model_config = ConfigDict(extra="forbid")
    gpu_name: str
    compute_capability: str
    integrated: bool = Field(description="True on Jetson (GPU memory shared with the CPU)")
    tensorrt_version: str
    cuda_driver_version: str | None
    dla_core: int | None = None
    builder_flags: list[str] = []
    build_s: float = Field(description="seconds in build_serialized_network")
    timing_cache: str | None = Field(None, description="the timing cache file used (its name is its key), or None")
    timing_cache_bytes_before: int = 0
    timing_cache_bytes_after: int = 0


def write_engine_info(out_dir: Path, info: EngineInfo) -> Path:
    path = out_dir / ENGINE_INFO
    path.write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_engine_info(artifact_dir: Path) -> EngineInfo:
    path = artifact_dir / ENGINE_INFO
    if not path.is_file():
        raise ArtifactError(f"{artifact_dir}: not a TensorRT artifact (no {ENGINE_INFO}); recompile")
    try:
        return EngineInfo.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as e:
        raise ArtifactError(f"{path}: unreadable engine manifest ({str(e).splitlines()[0]}); recompile") from None


def _major_minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2] if p.isdigit())


def check_engine_matches(info: EngineInfo, gpu: GpuInfo, tensorrt_version: str, cuda_driver_version: str | None) -> None:
    """Raise ArtifactError unless the engine described by ``info`` can be loaded on ``gpu`` here.

    Refused: another GPU model or compute capability; another TensorRT version (engines are not
    portable across TensorRT releases); a CUDA driver older than, or of another major version than,
    the one the engine was built with.
    """
    built = f"{info.gpu_name} (compute capability {info.compute_capability}, TensorRT {info.tensorrt_version})"
    here = f"{gpu.name} (compute capability {gpu.compute_capability}, TensorRT {tensorrt_version})"
    hint = "TensorRT engines run only where they were built: recompile this model on this device"
    if info.compute_capability != gpu.compute_capability or info.gpu_name != gpu.name:
        raise ArtifactError(f"this engine was built for {built} and cannot run on {here}: {hint}")
    if info.tensorrt_version != tensorrt_version:
        raise ArtifactError(f"this engine was built with TensorRT {info.tensorrt_version}; this machine has "
                            f"TensorRT {tensorrt_version}: {hint}")
    if info.cuda_driver_version and cuda_driver_version:
        b, h = _major_minor(info.cuda_driver_version), _major_minor(cuda_driver_version)
        if h[:1] != b[:1] or h < b:
            raise ArtifactError(f"this engine was built under CUDA driver {info.cuda_driver_version}; this machine's "
                                f"driver is {cuda_driver_version}: {hint}")
