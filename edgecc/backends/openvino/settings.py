"""OpenVINO's per-target settings: a target's ``[target.openvino]`` table (pydantic only, no openvino)."""

from __future__ import annotations

from typing import Literal

from ...targets.settings import BackendSettings


class OpenVinoSettings(BackendSettings):
    device: Literal["CPU", "GPU", "NPU", "AUTO"] = "CPU"
    performance_hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"
