"""The search loop: the comparator once per graph variant, accuracy against the original model, the time
budget, resumption from a saved run."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..compare import CompareRequest, resolve_target, run_compare
from ..errors import BadInputError
from ..profiling.timing import ProfileSettings
from ..report.schema import ResultRow
from ..targets import Target
from .grid import GraphVariant, Spaces, default_spaces
from .results import Measured, SearchResult, derive, row_id, score, size_front
from .strategy import GridStrategy, OptunaStrategy

OnVariant = Callable[[SearchResult | None, Measured, int, int, float | None], None]


@dataclass(frozen=True)
class SearchRequest:
    """A search: the rows measured for each graph variant (``compare``, whose graph each variant replaces),
    the values each graph step takes (``spaces``), the accuracy budget (points), the time budget (seconds,
    None: no limit), how variants are picked (``strategy`` grid or optuna, ``max_variants``, ``seed``) and the
    targets file the recommended compile command names."""

    compare: CompareRequest
    spaces: Spaces = field(default_factory=default_spaces)
    max_accuracy_drop: float = 1.0
    time_budget_s: float | None = None
    strategy: str = "grid"
    max_variants: int = 12
    seed: int = 0
    targets_file: str | None = None

    def __post_init__(self) -> None:
        if self.max_accuracy_drop < 0:
            raise BadInputError("--max-accuracy-drop must be >= 0 (percentage points)")
        if self.time_budget_s is not None and self.time_budget_s < 0:
            raise BadInputError("--time-budget must be >= 0")
        if self.compare.eval_data is None:
            raise BadInputError("search measures accuracy: give --eval DATA")

    @property
    def input_shapes(self) -> list[str] | None:
        shapes = self.compare.input_shapes
        return [f"{k}:{','.join(map(str, v))}" for k, v in shapes.items()] or None

    def describe(self) -> dict[str, object]:
        """What the rows of a saved run answer: a saved run with another description is not resumed."""
        c = self.compare
        q = c.quantize
        request = {"backends": list(c.backends) if c.backends else None,
                   "precisions": list(c.precisions) if c.precisions else None,
                   "calibration": c.calibration.describe() if c.calibration else None,
                   "quantize": {"method": q.method, "per_channel": q.per_channel, "samples": q.samples}
                   | ({"equalize": True} if q.equalize else {})  # only when set: saved runs still resume
                   | ({"bias_correction": q.bias_correction} if q.bias_correction else {}),
                   "input_shapes": self.input_shapes, "options": c.options}
        if c.vary:
            request["vary"] = c.vary  # only when given: runs saved before --vary existed still resume
        if c.metric:
            request["metric"] = c.metric
        return request

    def command_context(self) -> dict[str, object]:
        """What compile_command needs besides the row."""
        c = self.compare
        return {"calibration": c.calibration, "quantize": self.describe()["quantize"], "input_shapes": self.input_shapes,
                "targets_file": self.targets_file, "options": c.options}


def build_request(model: str | os.PathLike[str], target: Target, *, eval_data, spaces: Spaces | None = None,  # noqa: ANN001
                  max_accuracy_drop: float = 1.0, time_budget_s: float | None = None, strategy: str = "grid",
                  max_variants: int = 12, seed: int = 0, targets_file: str | os.PathLike[str] | None = None,
                  settings: ProfileSettings = ProfileSettings(layer_runs=10), **compare: object) -> SearchRequest:
    """A SearchRequest from keyword arguments; ``compare`` are CompareRequest's fields. A searchable step's
    name given a list or a range (``prune=[None, 0.5]``) is that step's space, as in ``spaces``."""
    from ..graph.step import ValueRange
    from ..graph.steps import searchable_steps

    spaces = dict(spaces or {})
    for step in searchable_steps():
        if isinstance(compare.get(step.name), (list, tuple, ValueRange)):
            space = compare.pop(step.name)
            spaces[step.name] = list(space) if isinstance(space, tuple) else space
    for name, space in spaces.items():  # lists given in code are checked as the CLI's flags are
        if isinstance(space, list):
            from ..graph.steps import get_step

            for v in space:
                if v is not None:
                    get_step(name).check_in_list(v)
    base = CompareRequest.build(model, target, eval_data=eval_data, eval_against_original=True, settings=settings,
                                **compare)
    return SearchRequest(base, default_spaces() | spaces, max_accuracy_drop, time_budget_s, strategy,
                         max_variants, seed, str(targets_file) if targets_file is not None else None)


def _load_saved(path: Path | None, request: SearchRequest) -> tuple[list[Measured], dict[str, object]]:
    """Graph variants of an earlier run at ``path`` (same model, target, evaluation set and request), and
    where they were measured."""
    if path is None or str(path) == "-" or not path.exists():
        return [], {}
    c = request.compare
    model, target, eval_data = c.model, c.target.name, c.eval_data.describe()
    try:
        data = json.loads(path.read_text())
        if data.get("kind") != "edgecc-search":
            raise ValueError("not a search result")
        if (data["model"], data["target"], data.get("eval_data")) != (model, target, eval_data):
            raise BadInputError(
                f"--json {path} holds a search of {data['model']} on {data['target']} evaluated on {data.get('eval_data')}, "
                f"not {model} on {target} on {eval_data}: give another --json path (that file is left as it is)")
        if data.get("request") != request.describe():
            return [], {}  # other backends / precisions / calibration: its rows do not answer this question
        context = {k: data[k] for k in ("measured_on", "versions", "peak_gflops") if k in data}
        return [Measured.from_json(g) for g in data["graph_variants"]], context
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadInputError(f"--json {path}: cannot resume from it ({e}); give another path (that file is left as it is)") from None


def _cut_by_budget(row: ResultRow) -> bool:
    return row.stopped_by_budget is not None


def _strategy(request: SearchRequest, known: list[GraphVariant]):  # noqa: ANN202
    if request.strategy == "grid":
        return GridStrategy(request.spaces)
    if request.strategy == "optuna":
        return OptunaStrategy(request.spaces, request.max_variants, known=known, seed=request.seed)
    raise BadInputError(f"--strategy '{request.strategy}': grid or optuna")


@dataclass
class _Progress:
    """The state of one search run."""

    request: SearchRequest
    measured: list[Measured] = field(default_factory=list)
    outside: list[Measured] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    context: dict[str, object] = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float | None:
        budget = self.request.time_budget_s
        return None if budget is None else budget - (time.monotonic() - self.start)

    def result(self, measured: list[Measured]) -> SearchResult:
        r, c = self.request, self.request.compare
        metric, baseline, variants, pareto, recommended = derive(
            measured, r.max_accuracy_drop, c.model, c.target.name, r.command_context(), c.metric)
        return SearchResult(
            model=c.model, target=c.target.name, metric=metric, baseline=baseline, variants=variants, pareto=pareto,
            recommended=recommended, measured=list(measured), not_run=list(self.not_run),
            messages=list(self.messages), request=r.describe(), max_accuracy_drop=r.max_accuracy_drop,
            eval_data=c.eval_data.describe(), pareto_size=size_front(variants), **self.context,
        )


def _measure(state: _Progress, variant: GraphVariant, on_row) -> Measured:  # noqa: ANN001
    r = state.request
    t0 = time.monotonic()
    deadline = None if r.time_budget_s is None else state.start + r.time_budget_s
    report = run_compare(r.compare.with_graph(variant, deadline=deadline), on_row)
    state.context = {"measured_on": report.measured_on, "versions": report.versions, "peak_gflops": report.peak_gflops}
    return Measured(variant, report.results, report.flops, time.monotonic() - t0)


def run_search(request: SearchRequest, *, resume: str | os.PathLike[str] | None = None,
               on_variant: OnVariant | None = None,
               on_row: Callable[[ResultRow, int, int], None] | None = None) -> SearchResult:
    """Measure graph variants with every backend x precision and recommend the fastest row losing at most
    ``max_accuracy_drop`` points against the original model's onnxruntime FP32 baseline (see edgecc.search).
    ``resume``: the JSON of an earlier run; ``on_variant(result_so_far, measured, done, total, seconds_left)``
    is called after each graph variant (the CLI saves ``result_so_far`` there)."""
    state = _Progress(request)
    earlier, state.context = _load_saved(Path(resume) if resume else None, request)
    # a graph variant the earlier run's time budget cut short is measured again, whole
    saved = {m.variant: m for m in earlier if not any(_cut_by_budget(r) for r in m.rows)}
    strat = _strategy(request, list(saved))
    state.outside = [m for v, m in saved.items() if not strat.covers(v)]  # the user's measurements: always kept
    while (variant := strat.next()) is not None:
        if variant in saved:
            m = saved.pop(variant)
        elif not variant.is_original and (rest := state.left()) is not None and rest <= 0:
            if strat.stops_when_time_is_up:
                state.messages.append(f"time budget of {request.time_budget_s:g} s spent after {len(state.measured)} graph variants")
                break
            state.not_run.append(variant.key)
            continue
        else:
            m = _measure(state, variant, on_row)
        state.measured.append(m)
        result = state.result(state.measured + state.outside)
        strat.tell(variant, score(result, variant))
        if on_variant is not None:
            on_variant(result, m, len(state.measured) + len(state.not_run), strat.total, state.left())
    return _finish(state, strat.total)


def _finish(state: _Progress, total: int) -> SearchResult:
    budget = state.request.time_budget_s
    measured = state.measured + state.outside
    if state.not_run:
        state.messages.append(f"time budget of {budget:g} s spent: {len(state.not_run)} of {total} graph variants "
                              f"not measured ({', '.join(state.not_run)}); run again with the same --json to continue")
    cut = [row_id(m.variant, r) for m in measured for r in m.rows if _cut_by_budget(r)]
    if cut:
        state.messages.append(f"time budget of {budget:g} s spent: {len(cut)} row(s) not measured or cut short "
                              f"({', '.join(cut)})")
    reused = sum(m.reused for m in measured)
    if reused:
        state.messages.append(f"{reused} graph variant(s) taken from the earlier run, not measured again")
    result = state.result(measured)
    if result.recommended is None:
        state.messages.append(f"no measured variant stays within {state.request.max_accuracy_drop:g} points of the "
                              f"baseline's {result.metric}: nothing recommended")
        result.messages = list(state.messages)
    return result


def search(model: str | os.PathLike[str], target: str | Target, *, resume: str | os.PathLike[str] | None = None,
           on_variant: OnVariant | None = None, on_row: Callable[[ResultRow, int, int], None] | None = None,
           **request: object) -> SearchResult:
    """Build a :class:`SearchRequest` from keyword arguments (``eval_data``, ``spaces`` {step: values or
    ValueRange}, ``max_accuracy_drop``, ``time_budget_s``, ``strategy``, ``max_variants``, ``seed``,
    ``targets_file`` and CompareRequest's fields) and run it."""
    target = resolve_target(target, request.get("targets_file"), measure_host_peak=True)
    return run_search(build_request(model, target, **request), resume=resume, on_variant=on_variant, on_row=on_row)


__all__ = ["SearchRequest", "build_request", "run_search", "search"]
