"""onnxruntime artifact: the prepared ONNX model; the session is built when the artifact is opened."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ...graph.io import save_model
from ..base import BackendOptions, CompileOutput, Compiler

if TYPE_CHECKING:
    from ...graph.io import PreparedModel
    from ...targets import Target

MODEL_FILE = "model.onnx"


class OnnxRuntimeCompiler(Compiler):
    def compile(
        self, model: PreparedModel, target: Target, precision: str, options: BackendOptions, out_dir: Path
    ) -> CompileOutput:
        save_model(model.model, out_dir / MODEL_FILE)
        return CompileOutput(options=options)
