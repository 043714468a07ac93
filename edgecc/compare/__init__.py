"""The comparator: one model, many rows (backend x precision x backend options), each built and measured in
its own process, paired with the onnxruntime FP32 baseline measured in the same run.

``request`` (what to compare, checked once), ``plan`` (which rows, and why a row cannot run), ``rows`` (one row
in a child process, within the limits and the time budget), ``results`` (speedups, accuracy drops, the
report), ``run`` (the loop). edgecc.api.compare and edgecc.search are its callers.
"""

from .plan import PlannedRow, option_sets, plan_rows
from .request import CompareRequest, input_shapes_arg, resolve_target
from .results import accuracy_drops, with_speedups
from .run import run_compare

__all__ = ["CompareRequest", "PlannedRow", "accuracy_drops", "input_shapes_arg", "option_sets", "plan_rows",
           "resolve_target", "run_compare", "with_speedups"]
