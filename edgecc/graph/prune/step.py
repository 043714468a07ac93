"""``--prune R`` as a graph step of compile/compare/search: structured channel pruning made physical."""

from __future__ import annotations

from typing import ClassVar

import onnx_ir as ir

from ...errors import BadInputError
from ..step import GraphStep, StepContext

#: --prune in compile/compare/search keeps channel counts of groups with 64+ channels a multiple of 8: CPU
#: kernels work on blocks of 8/16 channels, and odd counts fall off their fast paths (EfficientNet-Lite0 pruned by
#: 0.1 ran in 13.2 ms in onnxruntime with exact counts, 7.1 ms rounded to 8, 8.0 ms unpruned). Small groups keep
#: their exact ratio. `edgecc prune --round-to` sets it by hand.
STEP_ROUND_TO, STEP_ROUND_FROM = 8, 64


class PruneStep(GraphStep):
    """Remove the least important ``ratio`` of each coupled channel group. With real samples (the run's
    calibration data) channels are ranked by activation, each group's count is chosen as
    allocate.DEFAULT_ALLOCATION says, and the layers reading removed channels re-fitted by least squares to the
    unpruned model's outputs (edgecc.graph.prune.recover); without them by l1 norm, every group by ``ratio``."""

    name: ClassVar[str] = "prune"
    flag: ClassVar[str] = "--prune"
    help: ClassVar[str] = "prune this fraction of channels first (edgecc prune --ratio)"
    search_help: ClassVar[str] = ("comma-separated channel-pruning ratios to try (0 is unpruned), or a range LOW:HIGH "
                                  "for --strategy optuna")
    search_default: ClassVar[str] = "0"
    off_words: ClassVar[tuple[str, ...]] = ()
    takes_range: ClassVar[bool] = True
    measures_on_data: ClassVar[bool] = True

    def check(self, value: object) -> None:
        if not 0.0 < float(value) < 1.0:
            raise BadInputError(f"--prune must be between 0 and 1 (exclusive), got {value:g}")

    def check_in_list(self, value: float) -> None:
        if not 0.0 < value < 1.0:
            raise BadInputError(f"--prune: every ratio must be 0 (off) or between 0 and 1 (exclusive), got {value:g}")

    def from_number(self, value: float) -> float | None:
        if value == 0:
            return None
        self.check_in_list(value)
        return value

    def label(self, value: object) -> str:
        return f"prune{value or 0:g}"

    def off_choice(self) -> object:
        return 0.0

    def apply(self, model: ir.Model, value: object, ctx: StepContext) -> str:
        from .allocate import DEFAULT_ALLOCATION
        from .iterative import prune_model

        _, plan, recovered = prune_model(model, float(value), ctx.batches() if ctx.measured else None,
                                         round_to=STEP_ROUND_TO, round_from=STEP_ROUND_FROM)
        how = (f"criterion=activation,allocation={DEFAULT_ALLOCATION},least-squares-recovered" if recovered is not None
               else "criterion=l1")
        return f"prune(ratio={value:g},{how},round-to={STEP_ROUND_TO},removed={plan.removed_channels})"
