"""``--finetune SECONDS`` as a graph step of compile/compare: the rewritten model distilled towards the original.

It runs after the rewrites that change weights (--prune, --lowrank) and before --optimize, so what is trained is
the model those rewrites made and what optimize fuses is the trained model. The samples are the run's
--calibration data, read again without the INT8 calibration's sample cap (--samples) but within
:data:`FINETUNE_DATA_BYTES`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import ClassVar

import numpy as np
import onnx_ir as ir

from ...errors import BadInputError, EdgeccWarning
from ..step import GraphStep, StepContext

#: the fine-tuning samples and the original's outputs on them stay in memory for the whole run: at most this many
#: bytes of inputs are read (about 1,780 RGB images of 224x224 in float32; every sample of a small data set)
FINETUNE_DATA_BYTES = 1 << 30

_NEEDS_DATA = "--finetune trains on real samples{}: give --calibration a directory of images or an .npz/.npy of inputs"


class NothingToFinetuneWarning(EdgeccWarning):
    """--finetune changed nothing: no earlier step changed the weights, or training made the held-out error worse."""


class FinetuneStep(GraphStep):
    """Train the rewritten model's weights for ``seconds`` to reproduce the original's outputs on the run's
    calibration samples (edgecc.graph.finetune.finetune_distill; needs the ``train`` extra)."""

    name: ClassVar[str] = "finetune"
    flag: ClassVar[str] = "--finetune"
    #: the help is rich markup: "\[" keeps "[train]" from being read as a style tag
    help: ClassVar[str] = ("distil the rewritten model towards the original on the --calibration samples for this "
                           "many seconds (needs edgecc\\[train])")
    measures_on_data: ClassVar[bool] = True

    def check(self, value: object) -> None:
        if not 0 < float(value) < math.inf:
            raise BadInputError(f"--finetune takes the training time in seconds, > 0; got {value:g}")

    def check_context(self, value: object, ctx: StepContext) -> None:
        if ctx.data is None:
            raise BadInputError(_NEEDS_DATA.format(""))
        if ctx.data.is_random:
            raise BadInputError(_NEEDS_DATA.format(", not random ones"))

    def label(self, value: object) -> str:
        return f"finetune{value or 0:g}"

    def apply(self, model: ir.Model, value: object, ctx: StepContext) -> str:
        from .distill import finetune_distill

        self.check_context(value, ctx)
        seconds = float(value)
        if ctx.original is None or _same_weights(ctx.original, model):
            warnings.warn("--finetune: no earlier step (--prune, --lowrank) changed the weights, so the model is the "
                          "original already; nothing was trained", NothingToFinetuneWarning, stacklevel=2)
            return "finetune(skipped:weights unchanged)"
        feeds, count = _samples(ctx)
        show = ctx.progress
        if show is not None:
            show(f"fine-tuning: the original's outputs on {count} samples")

        def on_step(step: int, total: int | None, loss: float, elapsed: float) -> None:
            show(f"fine-tuning: step {step}{f'/{total}' if total else ''}, loss {loss:.4g}, {elapsed:.0f}/{seconds:g} s")

        result = finetune_distill(ctx.original, model, feeds, time_budget_s=seconds,
                                  progress=on_step if show is not None else None)
        figures = [f"seconds={seconds:g}", f"samples={count}", f"steps={result.steps}",
                   f"error={result.error_before:.3g}->{result.error_after:.3g}"]
        if result.agreement_before is not None and result.agreement_after is not None:
            figures.append(f"agreement={result.agreement_before:.3f}->{result.agreement_after:.3f}")
        if result.error_after > result.error_before:
            # too short a run can end on Adam's first, large steps: the rewritten weights are better than those
            warnings.warn(f"--finetune {seconds:g}: the held-out error rose ({result.error_before:.3g} -> "
                          f"{result.error_after:.3g} after {result.steps} steps), so the trained weights were not kept; "
                          "give it more seconds", NothingToFinetuneWarning, stacklevel=2)
            return f"finetune({','.join(figures)},not kept)"
        trained = result.model.graph.initializers
        for name in result.trained:
            model.graph.initializers[name].const_value = trained[name].const_value
        return f"finetune({','.join(figures)})"


def _same_weights(a: ir.Model, b: ir.Model) -> bool:
    """Whether ``b`` has exactly ``a``'s initializers (names, shapes, values)."""
    ia, ib = a.graph.initializers, b.graph.initializers
    if ia.keys() != ib.keys():
        return False
    for name, v in ia.items():
        x, y = v.const_value, ib[name].const_value
        if x is None or y is None:
            if x is not y:
                return False
        elif x is not y and not np.array_equal(x.numpy(), y.numpy()):
            return False
    return True


def _samples(ctx: StepContext) -> tuple[list[dict[str, np.ndarray]], int]:
    """The calibration data without the INT8 calibration's cap, up to FINETUNE_DATA_BYTES (feeds without the
    last batch's padding rows, and the sample count)."""
    from ...data import load_dataset

    per_sample = sum(np.dtype(s.dtype).itemsize * math.prod(d if isinstance(d, int) else 1 for d in s.shape[1:])
                     for s in ctx.prepared.inputs)
    spec = replace(ctx.data, limit=max(1, FINETUNE_DATA_BYTES // max(per_sample, 1)))
    data = load_dataset(spec, ctx.prepared.inputs)
    return [{k: v[:n] for k, v in batch.items()} for batch, n in zip(data.batches, data.valid)], data.samples
