"""Cleanup and simplification passes on onnx_ir, and the optimize pipeline that runs them with the fusion rules."""

from .manager import PassRecord, ReportingPassManager, count_nodes
from .optimize import OptimizeResult, fold_shape_computations, optimize_model

__all__ = ["PassRecord", "ReportingPassManager", "count_nodes", "OptimizeResult", "fold_shape_computations", "optimize_model"]
