"""The JSON contract of ``profile --json`` and ``compare --json``. Keys are read by other tools:
add keys freely, never rename or remove one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..profiling.timing import LatencyStats

Status = Literal["ok", "failed", "unavailable"]
#: why a row did not run to its end although nothing went wrong with it: the run's time budget
#: ("not_started": spent before the row began; "cut_short": ran out while it ran)
Stopped = Literal["not_started", "cut_short"]


class LayerRow(BaseModel):
    name: str
    op_type: str
    time_ms: float
    exec_type: str = ""


class ResultRow(BaseModel):
    """One backend x precision on one target."""

    backend: str
    precision: str
    status: Status
    error: str | None = None
    latency_ms: LatencyStats | None = None
    device_latency_ms: LatencyStats | None = Field(
        None, description="the model alone on the accelerator, without host<->device copies (TensorRT: CUDA events)"
    )
    throughput_per_s: float | None = Field(None, description="samples per second at the model's batch size, sequential runs")
    speedup: float | None = Field(None, description="baseline p50 / this row's p50, both measured in the same run")
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    cosine: float | None = None
    verified: bool | None = Field(None, description="outputs within this precision's tolerance of the reference")
    compile_s: float | None = None
    artifact_bytes: int | None = None
    runs: int | None = None
    peak_memory_bytes: int | None = Field(None, description="peak resident memory of the process that compiled and ran this row")
    gflops_per_s: float | None = Field(None, description="model FLOPs / p50 latency")
    roofline_fraction: float | None = Field(None, description="gflops_per_s / the target's peak FP32 GFLOP/s")
    layers: list[LayerRow] = Field(default_factory=list, description="slowest layers first, averaged per run")
    artifact: str | None = None
    # Accuracy on a labelled / evaluation data set (compare --eval): percentages 0-100.
    accuracy: float | None = Field(None, description="top-1 accuracy on the labelled evaluation set, percent")
    agreement: float | None = Field(None, description="top-1 agreement with the onnxruntime FP32 reference, percent")
    psnr_db: float | None = Field(None, description="PSNR of the first output against the FP32 reference, dB (dense outputs)")
    eval_samples: int | None = Field(None, description="samples the accuracy figures were measured on")
    metrics: dict[str, float | None] | None = Field(
        None, description="every metric measured on the evaluation set, by name (built-in and plugged-in; inf as null)"
    )
    accuracy_drop: float | None = Field(
        None, description="baseline's accuracy (or agreement, without labels) minus this row's, percentage points"
    )
    within_accuracy_budget: bool | None = Field(None, description="accuracy_drop <= --max-accuracy-drop (None: no budget)")
    calibration: str | None = Field(None, description="the data INT8 was calibrated on")
    float_layers: list[str] | None = Field(
        None, description="INT8 QDQ rows with compare's accuracy budget: the layers kept in float to hold it (mixed "
        "precision); None: no budget applied")
    options: dict[str, object] | None = Field(
        None, description="the backend options this row was built with, of those the run varied (--vary); None: not varied"
    )
    stopped_by_budget: Stopped | None = Field(
        None, description="set when the run's time budget (search --time-budget) stopped this row: not_started or cut_short"
    )

    @property
    def name(self) -> str:
        """``backend`` with the varied options, as tables show it: ``openvino performance_hint=THROUGHPUT``."""
        return " ".join([self.backend, *(f"{k}={v}" for k, v in (self.options or {}).items())])


class Baseline(BaseModel):
    backend: str = "onnxruntime"
    precision: str = "fp32"


class CompareReport(BaseModel):
    model: str
    target: str
    baseline: Baseline = Baseline()
    results: list[ResultRow]
    measured_on: str = Field(description="the machine the rows ran on")
    versions: dict[str, str] = Field(default_factory=dict)
    flops: int | None = None
    peak_gflops: float | None = Field(None, description="the target's peak FP32 GFLOP/s used for roofline_fraction")
    calibration: str | None = Field(None, description="the data INT8 rows were calibrated on")
    eval_data: str | None = Field(None, description="the data set the accuracy columns were measured on")
    max_accuracy_drop: float | None = Field(None, description="accuracy budget in percentage points, when given")
    accuracy_metric: str | None = Field(
        None, description="the metric accuracy_drop is measured in when --metric names one (default: top1, else agreement)"
    )
