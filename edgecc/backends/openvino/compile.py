"""OpenVINO artifact: the model as OpenVINO IR (model.xml + model.bin with exact FP32 weights).

The precision is not baked into the IR: the runner sets INFERENCE_PRECISION_HINT from the manifest
when it compiles the IR for the device.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ...graph.io import save_model
from ..base import BackendOptions, CompileOutput, Compiler
from .settings import OpenVinoSettings

if TYPE_CHECKING:
    from ...data import Dataset
    from ...graph.io import PreparedModel
    from ...targets import Target
    from . import OpenVinoOptions

MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"


def resolve_options(options: OpenVinoOptions, target: Target) -> OpenVinoOptions:
    """``options`` with device, performance hint and CPU threads taken from ``target`` where unset.

    Threads default to the target's cores; the runner caps them at the cores it may use where it runs.
    """
    settings = target.openvino or OpenVinoSettings()
    device = options.device or settings.device
    threads = options.inference_num_threads
    if threads is None and device == "CPU":
        threads = target.cores
    return options.model_copy(update={
        "device": device,
        "performance_hint": options.performance_hint or settings.performance_hint,
        "inference_num_threads": threads,
    })


class OpenVinoCompiler(Compiler):
    def compile(
        self, model: PreparedModel, target: Target, precision: str, options: BackendOptions, out_dir: Path,
        calibration: Dataset | None = None,
    ) -> CompileOutput:
        import openvino as ov

        passes = ["openvino-convert-model"]
        notes: list[str] = []
        with tempfile.TemporaryDirectory(prefix="edgecc-ov-") as tmp:
            # convert_model folds the shape arithmetic that read_model keeps (288 vs 774 ops on ResNet-50).
            converted = ov.convert_model(str(save_model(model.model, Path(tmp) / "model.onnx")))
            if calibration is not None:  # int8 with int8_quantizer=nncf: NNCF quantises the FP32 model
                from .nncf_quantize import quantize_with_nncf

                converted, note = quantize_with_nncf(converted, calibration)
                passes.append("nncf-quantize")
                notes.append(note)
            # save_model compresses weights to FP16 by default; the artifact must hold the model's own FP32
            # weights. Saved before the temporary ONNX file goes: large weights may still be mapped from it.
            ov.save_model(converted, str(out_dir / MODEL_FILE), compress_to_fp16=False)
        return CompileOutput(options=resolve_options(options, target), passes=passes, notes=notes)  # type: ignore[arg-type]
