"""edgecc search: the fastest deployment within an accuracy budget, over backends x precisions x graph variants.

A plain grid (every (prune ratio, low-rank energy) pair), or Optuna picking pairs where the fast variants
that keep accuracy are (edgecc.search.strategy); each graph variant is made once by
:func:`edgecc.api.compare`, which compiles and measures it with every backend x precision in isolated
children. Accuracy is measured against the ORIGINAL model: top-1 drop from the original model's
onnxruntime FP32 accuracy when the evaluation set has labels, else the drop in top-1 agreement with the
original model's onnxruntime FP32 outputs (the original baseline agrees 100%).
"""

from __future__ import annotations

from .grid import GraphVariant, parse_lowrank, parse_prune, parse_time_budget
from .run import SearchResult, compile_command, search
from .strategy import PruneRange, parse_prune_space

__all__ = ["GraphVariant", "PruneRange", "SearchResult", "compile_command", "parse_lowrank", "parse_prune", "parse_prune_space",
           "parse_time_budget", "search"]
