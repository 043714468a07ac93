"""A test-only third-party backend with its own per-target settings model: registered through the
``edgecc.backends`` entry-point group by tests, it is onnxruntime underneath and serves the targets
that carry a ``[target.board]`` table, which edgecc validates with BoardSettings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgecc.backends.onnxruntime import OnnxRuntimeBackend
from edgecc.targets import BackendSettings


class BoardSettings(BackendSettings):
    clock_mhz: int = Field(gt=0, description="the board's NPU clock, MHz")
    mode: Literal["fast", "exact"] = "fast"


class BoardBackend(OnnxRuntimeBackend):
    name = "board"
    description = "test-only: onnxruntime for boards that list a [target.board] table"
    settings_model = BoardSettings
