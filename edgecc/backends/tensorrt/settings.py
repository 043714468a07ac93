"""TensorRT's per-target settings: a target's ``[target.tensorrt]`` table (pydantic only, no tensorrt)."""

from __future__ import annotations

from pydantic import Field

from ...targets.settings import BackendSettings


class TensorRtSettings(BackendSettings):
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    dla_cores: int = Field(0, ge=0)
    workspace_mib: int = Field(1024, ge=16)
