"""Optional distillation fine-tuning of a pruned model (the ``train`` extra: torch and onnx2torch).

Importing this package does not import torch; :func:`finetune_distill` does, and raises MissingExtra
(exit 3, with ``pip install "edgecc[train]"``) when it is not installed.
"""

from .distill import WRITEBACK_TOLERANCE, FinetuneResult, finetune_distill

__all__ = ["FinetuneResult", "WRITEBACK_TOLERANCE", "finetune_distill"]
