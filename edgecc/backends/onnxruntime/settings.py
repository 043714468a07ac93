"""onnxruntime's per-target settings: a target's ``[target.onnxruntime]`` table (pydantic only, no onnxruntime)."""

from __future__ import annotations

from pydantic import Field

from ...targets.settings import BackendSettings


class OnnxRuntimeSettings(BackendSettings):
    """onnxruntime on this target; ``intra_op_threads`` 0 means one per core of the target."""

    intra_op_threads: int = Field(0, ge=0)
