"""The parts every backend is made of: a description (Backend), a Compiler and a Runner, and a Tuner
where the backend tunes.

A Backend says whether it is available here and why not, which precisions it serves on a target and
which ops it supports. Its Compiler turns a prepared model into files in an artifact directory; its
Runner opens an artifact and runs it; its Tuner (optional) measures kernels for a model into a lasting
database the Compiler applies. Nothing here imports a backend's library.

The contract is what these classes declare: abstract methods a backend must write, and optional hooks
with a documented default that a backend overrides when it can do more (Backend.settings_model,
target_support, calibrated_precisions, quantizes_itself, estimated_unsupported_ops, open_rpc_runner, tuner;
Runner.close, layer_profile, device_times_ms). Callers call them directly; nothing probes with getattr.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..errors import BackendUnavailable, BadInputError, UnsupportedError
from ..targets.settings import BackendSettings

if TYPE_CHECKING:
    from ..artifact import Artifact
    from ..graph.io import PreparedModel, TensorSpec
    from ..remote.device import RpcDevice
    from ..targets import Target

Precision = Literal["fp32", "bf16", "fp16", "int8"]
#: every precision edgecc knows, in the order it lists them (the one list; from ``Precision``)
PRECISIONS: tuple[str, ...] = get_args(Precision)


class BackendOptions(BaseModel):
    """Base of each backend's typed options; unknown keys are an error. An option that only matters for some
    precisions says so in its Field: ``json_schema_extra={"precisions": ["int8"]}`` (compare --vary then does
    not build rows of other precisions once per value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def applies_to(cls, key: str, precision: str) -> bool:
        field = cls.model_fields.get(key)
        extra = field.json_schema_extra if field is not None and isinstance(field.json_schema_extra, dict) else {}
        return precision in extra.get("precisions", [precision])


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerTime:
    """One layer's share of a run, averaged over the profiled runs (ms)."""

    name: str
    op_type: str
    time_ms: float
    exec_type: str = ""


@dataclass
class CompileOutput:
    """What a Compiler reports besides the files it wrote."""

    options: BackendOptions
    passes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Compiler(ABC):
    @abstractmethod
    def compile(
        self, model: PreparedModel, target: Target, precision: str, options: BackendOptions, out_dir: Path
    ) -> CompileOutput:
        """Write the backend's files for ``model`` into ``out_dir`` (which exists and is empty)."""


class Runner(ABC):
    """Runs one artifact. Use as a context manager; ``run`` validates inputs, then calls ``_run``."""

    def __init__(self, artifact: Artifact):
        self.artifact = artifact
        self.inputs: list[TensorSpec] = artifact.inputs
        self.outputs: list[TensorSpec] = artifact.outputs

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the backend's resources."""

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on ``feeds`` (name -> array) and return outputs by name."""
        expected = {s.name: s for s in self.inputs}
        if set(feeds) != set(expected):
            raise BadInputError(
                f"inputs {sorted(feeds)} do not match the model's inputs {sorted(expected)}"
            )
        for name, spec in expected.items():
            arr = feeds[name]
            if tuple(arr.shape) != tuple(spec.shape):
                raise BadInputError(f"input '{name}' has shape {list(arr.shape)}, the artifact expects {list(spec.shape)}")
            if arr.dtype.name != spec.dtype:
                raise BadInputError(f"input '{name}' has dtype {arr.dtype.name}, the artifact expects {spec.dtype}")
        return self._run(feeds)

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def layer_profile(self, feeds: dict[str, np.ndarray], runs: int) -> list[LayerTime] | None:
        """Per-layer times averaged over ``runs`` runs, slowest first; None when the backend gives none."""
        return None

    def device_times_ms(self, feeds: dict[str, np.ndarray], warmup: int, runs: int) -> list[float] | None:
        """Per-run time of the model alone on an accelerator (ms), after ``warmup`` runs; one per run.

        None by default: the backend has no device timer (CPU backends: the wall-clock time is the
        device's). TensorRT overrides this with CUDA events."""
        return None


@dataclass(frozen=True)
class TuneRequest:
    """A tuning budget and where it is measured: at most ``trials`` measured candidates and ``time_budget_s``
    seconds; records kept under ``db_dir`` (None: the backend's default); candidates measured on the boards
    behind ``device`` (None: here). ``on_progress`` receives the backend's progress events."""

    trials: int
    time_budget_s: float | None = None
    db_dir: str | os.PathLike[str] | None = None
    device: RpcDevice | None = None
    on_progress: Callable[[object], None] | None = None


class TuneReport(ABC):
    """What a tuning run did."""

    @abstractmethod
    def to_json(self) -> dict[str, object]:
        """The report as JSON data (what ``edgecc tune --json`` writes)."""


class Tuner(ABC):
    """A backend's third part, where it tunes: measures candidate kernels of a model for a target and keeps
    what it learnt in a lasting database, which its Compiler applies. Ctrl-C stops a run and keeps records."""

    @abstractmethod
    def tune(self, model: PreparedModel, target: Target, request: TuneRequest) -> TuneReport: ...


class Backend(ABC):
    """A backend's description: identity, availability, capability; and its compiler and runner."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: the pip extra that installs this backend's library, e.g. "openvino"
    extra: ClassVar[str | None] = None
    options_model: ClassVar[type[BackendOptions]] = BackendOptions
    #: the model of a target's table for this backend (``[target.<name>]``); None: it takes no target settings.
    #: The registry registers it with edgecc.targets.settings, so targets files are validated with it.
    settings_model: ClassVar[type[BackendSettings] | None] = None

    @property
    def install_command(self) -> str:
        return f'pip install "edgecc[{self.extra}]"' if self.extra else ""

    @abstractmethod
    def availability(self) -> Availability:
        """Whether this backend can compile and run here; never raises and never crashes."""

    def require(self) -> None:
        """Raise BackendUnavailable with the install command when this backend is missing."""
        a = self.availability()
        if not a.available:
            hint = f"; install it with: {self.install_command}" if self.install_command else ""
            raise BackendUnavailable(f"backend {self.name} is unavailable: {a.reason}{hint}")

    def target_support(self, target: Target) -> str | None:
        """None when this backend can build for ``target``, else the reason it cannot.

        By default a backend with a ``settings_model`` serves the targets that carry its table, and one
        without serves every target; a backend overrides this with its own rule.
        """
        if self.settings_model is not None and target.settings_for(self.name) is None:
            return f"target {target.name} does not list backend {self.name}; its backends: {', '.join(target.backends())}"
        return None

    @abstractmethod
    def precisions(self, target: Target) -> tuple[str, ...]:
        """Precisions this backend serves on ``target`` (without calibration data)."""

    def calibrated_precisions(self, target: Target) -> tuple[str, ...]:
        """Precisions this backend serves on ``target`` given calibration data (INT8); none by default.

        A backend listing "int8" runs the QDQ INT8 models edgecc makes (edgecc.graph.quantize), unless
        ``quantizes_itself`` says its options pick its own quantiser."""
        return ()

    def quantizes_itself(self, options: BackendOptions) -> bool:
        """True when, with ``options``, this backend's compiler quantises to INT8 itself: it then gets the FP32
        model and a ``calibration`` keyword (an edgecc.data.Dataset) instead of a QDQ model."""
        return False

    def check_precision(self, target: Target, precision: str) -> None:
        if precision not in PRECISIONS:
            raise BadInputError(f"unknown precision '{precision}'; known: {', '.join(PRECISIONS)}")
        can = self.precisions(target) + self.calibrated_precisions(target)
        if precision not in can:
            raise UnsupportedError(
                f"backend {self.name} cannot run {precision} on target {target.name}; it can: {', '.join(can)}"
            )

    @abstractmethod
    def unsupported_ops(self, model: PreparedModel) -> list[str]:
        """Op types in ``model`` this backend cannot run, as 'domain::Op' (or 'Op' for the default domain)."""

    def estimated_unsupported_ops(self, model: PreparedModel) -> tuple[list[str], str | None]:
        """What this backend can say about ``model``'s ops while it is unavailable here: the op types it
        is expected not to run and a label saying it is an estimate (and from what).

        By default nothing: ([], None). A backend with a static capability table (TensorRT) overrides it."""
        return [], None

    def parse_options(self, options: dict[str, object] | BackendOptions | None) -> BackendOptions:
        """Validate user options into this backend's options model (the boundary check)."""
        from pydantic import ValidationError

        if isinstance(options, self.options_model):
            return options
        try:
            return self.options_model.model_validate(options or {})
        except ValidationError as e:
            first = e.errors()[0]
            raise BadInputError(f"{self.name} option {'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    @abstractmethod
    def compiler(self) -> Compiler: ...

    @abstractmethod
    def open_runner(self, artifact: Artifact, *, profile_layers: bool = False) -> Runner:
        """Open ``artifact`` for running here; with ``profile_layers`` the runner records per-layer times."""

    def open_rpc_runner(self, artifact: Artifact, device: RpcDevice, *, timeout_s: float = 1800.0) -> Runner:
        """Open ``artifact`` on the board behind ``device`` (a TVM RPC server or tracker); backends whose
        artifacts run through a remote runtime override this. edgecc.remote.run decides when it is used."""
        raise UnsupportedError(f"backend {self.name} does not run artifacts on remote devices ({device.url})")

    def tuner(self) -> Tuner | None:
        """This backend's tune part; None when it does not tune."""
        return None


def op_id(domain: str, op_type: str) -> str:
    return op_type if domain in ("", "ai.onnx") else f"{domain}::{op_type}"


def unavailable(name: str, reason: str) -> BackendUnavailable:
    return BackendUnavailable(f"backend {name} is unavailable: {reason}")
