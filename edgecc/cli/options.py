"""Option groups that several commands share, declared once: the graph steps' flags (read from the graph-step
registry) and the data/INT8 flags. A group adds its options to a command's signature and hands the command one
object built from them, so a command lists a group by name instead of repeating seven flags.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from ..data import DataSpec
from ..graph.steps import STEPS, Space
from . import int8_options as q


def option_group(name: str, params: list[inspect.Parameter], build: Callable[[dict[str, object]], object]):
    """A decorator that adds ``params`` (typer-annotated) to a command and passes it ``name=build(values)``."""
    keys = [p.name for p in params]

    def decorate(fn):  # noqa: ANN001, ANN202
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != name]

        @functools.wraps(fn)
        def command(*args, **kwargs):
            values = {k: kwargs.pop(k) for k in keys}
            return fn(*args, **{name: build(values)}, **kwargs)

        command.__signature__ = sig.replace(parameters=own + params)
        command.__annotations__ = {p.name: p.annotation for p in own + params}
        return command

    return decorate


def _param(name: str, annotation: object, default: object) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _step_param(step) -> inspect.Parameter:  # noqa: ANN001
    if step.value_type is bool:
        return _param(f"step_{step.name}", Annotated[bool, typer.Option(step.flag, help=step.help)], False)
    return _param(f"step_{step.name}", Annotated[Optional[float], typer.Option(step.flag, help=step.help)], None)


def graph_steps():  # noqa: ANN201
    """compile/compare: every registered graph step's flag; the command gets ``steps``: {name: value or None}."""
    return option_group("steps", [_step_param(s) for s in STEPS.values()],
                        lambda v: {k.removeprefix("step_"): value for k, value in v.items()})


def graph_step_spaces():  # noqa: ANN201
    """search: the searchable steps' flags (lists or ranges); the command gets ``spaces``: {name: Space}."""
    params = [_param(f"step_{s.name}", Annotated[str, typer.Option(s.flag, help=s.search_help)], s.search_default)
              for s in STEPS.values() if s.searchable]

    def build(values: dict[str, object]) -> dict[str, Space]:
        return {k.removeprefix("step_"): STEPS[k.removeprefix("step_")].parse_space(str(v)) for k, v in values.items()}

    return option_group("spaces", params, build)


@dataclass(frozen=True)
class DataOptions:
    """The data flags as given: calibration source, INT8 settings, image preprocessing."""

    calibration: str | None
    method: str
    per_channel: bool
    samples: int
    equalize: bool
    bias_correction: str | None
    mean: str | None
    std: str | None
    layout: str | None

    def spec(self, source: str | None) -> DataSpec | None:
        """``source`` (calibration or evaluation data) with this run's image preprocessing."""
        return q.data_spec(source, self.mean, self.std, self.layout) if source is not None else None

    @property
    def calibration_spec(self) -> DataSpec | None:
        return self.spec(self.calibration)

    @property
    def quantize(self) -> dict[str, object]:
        return q.quantize_settings(self.method, self.per_channel, self.samples, self.equalize, self.bias_correction)


def data_options():  # noqa: ANN201
    """compile/compare/search: --calibration, the INT8 settings and the image preprocessing; the command gets
    ``data``: DataOptions."""
    params = [
        _param("calibration", q.CalibrationOpt, None), _param("method", q.MethodOpt, "minmax"),
        _param("per_channel", q.PerChannelOpt, True), _param("samples", q.SamplesOpt, 100),
        _param("equalize", q.EqualizeOpt, False), _param("bias_correction", q.BiasCorrectionOpt, None),
        _param("mean", q.MeanOpt, None), _param("std", q.StdOpt, None), _param("layout", q.LayoutOpt, None),
    ]
    return option_group("data", params, lambda v: DataOptions(**v))  # type: ignore[arg-type]
