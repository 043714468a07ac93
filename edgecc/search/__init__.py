"""edgecc search: the fastest deployment within an accuracy budget, over backends x precisions x graph variants.

A plain grid (every combination of the searchable graph steps' values: prune ratios, low-rank energies...), or
Optuna picking combinations where the fast variants that keep accuracy are (edgecc.search.strategy); each graph
variant is measured once by the comparator (edgecc.compare), which compiles and measures it with every backend x
precision in isolated children. Accuracy is measured against the ORIGINAL model: top-1 drop from the original
model's onnxruntime FP32 accuracy when the evaluation set has labels, else the drop in top-1 agreement with the
original model's onnxruntime FP32 outputs (the original baseline agrees 100%).

``grid`` (variants and their flags), ``strategy`` (which variant next), ``results`` (drops, frontiers, the
recommendation and its compile command), ``run`` (the request and the loop).
"""

from __future__ import annotations

from ..graph.steps import ValueRange
from .grid import GraphVariant, Spaces, grid, parse_space, parse_time_budget
from .results import Measured, SearchResult, compile_command
from .run import SearchRequest, build_request, run_search, search

__all__ = ["GraphVariant", "Measured", "SearchRequest", "SearchResult", "Spaces", "ValueRange", "build_request",
           "compile_command", "grid", "parse_space", "parse_time_budget", "run_search", "search"]
