"""One comparison, asked for once: the request the CLI, the API and search build and the comparator runs."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..backends import PRECISIONS
from ..data import RANDOM_WARNING, DataSpec
from ..errors import BadInputError, UnknownNameError
from ..graph.io import input_shapes_arg
from ..graph.quantize import QuantizeSettings, RandomCalibrationWarning, calibration_spec, check_settings
from ..graph.steps import STEPS, GraphRecipe
from ..profiling.timing import ProfileSettings
from ..targets import Target, load_registry

ShapeArg = dict[str, tuple[int, ...]] | list[str] | None


def resolve_target(
    target: str | Target, targets_file: str | os.PathLike[str] | None = None, *, measure_host_peak: bool = False
) -> Target:
    """The target called ``target``. With ``measure_host_peak``, ``host`` carries its measured GEMM
    peak (measured once per machine, then cached) instead of the estimate from its clock and ISA."""
    if not isinstance(target, str):
        return target
    if target == "host" and measure_host_peak:
        from ..targets.host import measure_peak_again

        measure_peak_again()  # 1 s; keeps the best measurement so far
    return load_registry(targets_file).get(target)


def data_arg(data: DataSpec | str | os.PathLike[str] | None) -> DataSpec | None:
    if data is None or isinstance(data, DataSpec):
        return data
    return DataSpec(str(data))


@dataclass(frozen=True)
class CompareRequest:
    """Everything one comparison needs: the model and target, which rows (backends x precisions x backend
    options), the graph rewrites run before every row, the data (INT8 calibration, evaluation, accuracy
    budget), how long to measure and the limits each row runs under. Built with :meth:`build`, which checks
    every value before anything runs.

    ``vary`` maps backend -> option -> values: that backend's rows are built once per combination.
    ``deadline`` (time.monotonic() seconds) bounds every row but the baseline. With
    ``eval_against_original``, agreement/PSNR are measured against the model before ``graph``'s rewrites."""

    model: str
    target: Target
    backends: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    options: dict[str, dict[str, object]] | None = None
    vary: dict[str, dict[str, list[object]]] | None = None
    graph: GraphRecipe = field(default_factory=GraphRecipe)
    calibration: DataSpec | None = None
    quantize: QuantizeSettings = field(default_factory=QuantizeSettings)
    eval_data: DataSpec | None = None
    max_accuracy_drop: float | None = None
    #: the metric whose drop is budgeted (edgecc.evaluation.metrics; None: top1 with labels, else agreement)
    metric: str | None = None
    eval_against_original: bool = False
    settings: ProfileSettings = field(default_factory=ProfileSettings)
    timeout_s: float | None = 1800
    memory_limit: int | None = None
    deadline: float | None = None
    artifacts_dir: Path | None = None

    @classmethod
    def build(
        cls,
        model: str | os.PathLike[str],
        target: Target,
        *,
        backends: list[str] | tuple[str, ...] | None = None,
        precisions: list[str] | tuple[str, ...] | None = None,
        input_shapes: ShapeArg = None,
        calibration: DataSpec | str | None = None,
        quantize: QuantizeSettings | dict | None = None,
        eval_data: DataSpec | str | None = None,
        artifacts_dir: str | os.PathLike[str] | None = None,
        graph: GraphRecipe | None = None,
        **fields: object,
    ) -> CompareRequest:
        """Check and normalise a request; graph steps may be given by name (``prune=0.3``, ``optimize=True``)."""
        steps = {name: fields.pop(name) for name in list(fields) if name in STEPS}
        recipe = GraphRecipe(**((graph.values() if graph is not None else {}) | steps))
        recipe.check()
        for p in precisions or []:
            if p not in PRECISIONS:
                raise UnknownNameError(f"unknown precision '{p}'; known: {', '.join(PRECISIONS)}")
        if "int8" in (precisions or []) and calibration is None:
            raise BadInputError("int8 rows need calibration data: --calibration DATA, or --calibration random for latency only")
        budget = fields.get("max_accuracy_drop")
        if budget is not None and (eval_data is None or budget < 0):
            raise BadInputError("--max-accuracy-drop needs --eval DATA and a budget >= 0 (percentage points)")
        if fields.get("metric") is not None:
            if eval_data is None:
                raise BadInputError("--metric measures on the evaluation data: give --eval DATA")
            from ..evaluation import get_metric

            get_metric(str(fields["metric"]))  # an unknown name or an unimportable plugin fails here, once
        settings_q = check_settings(quantize)
        cal_spec = calibration_spec(calibration, settings_q) if calibration is not None else None
        eval_spec = data_arg(eval_data)
        if eval_spec is not None and eval_spec.is_random:
            raise BadInputError("--eval needs real data (an .npz with inputs and labels, or images), not random")
        if cal_spec is not None and cal_spec.is_random:
            warnings.warn(RANDOM_WARNING, RandomCalibrationWarning, stacklevel=3)
        return cls(
            model=str(model), target=target, backends=tuple(backends) if backends else None,
            precisions=tuple(precisions) if precisions else None, input_shapes=input_shapes_arg(input_shapes),
            graph=recipe, calibration=cal_spec, quantize=settings_q, eval_data=eval_spec,
            artifacts_dir=Path(artifacts_dir) if artifacts_dir is not None else None, **fields,  # type: ignore[arg-type]
        )

    def with_graph(self, graph: GraphRecipe, **changes: object) -> CompareRequest:
        """The same request on another graph variant (search measures one per variant)."""
        return replace(self, graph=graph, **changes)
