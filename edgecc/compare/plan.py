"""Which rows a comparison has: backends x precisions x the backend options it varies, baseline first, each
with the reason it cannot run (or None)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..backends import get_backend, registry
from ..errors import BadInputError
from ..targets import Target
from .request import CompareRequest

OptionSet = tuple[dict[str, object] | None, dict[str, object] | None]


@dataclass(frozen=True)
class PlannedRow:
    """One row to build: ``options`` it is built with, ``varied`` the part the run varies (None: not varied),
    ``why`` it cannot run (None: it can)."""

    backend: str
    precision: str
    options: dict[str, object] | None = None
    varied: dict[str, object] | None = None
    why: str | None = None

    @property
    def label(self) -> str:
        """The artifact directory's name: ``openvino-int8`` plus the varied options."""
        return f"{self.backend}-{self.precision}" + "".join(f"-{k}={v}" for k, v in (self.varied or {}).items())


def _backend_rows(target: Target, backends: tuple[str, ...] | None, precisions: tuple[str, ...] | None,
                  calibrated: bool) -> list[tuple[str, str, str | None]]:
    """(backend, precision, reason it cannot run or None) for every row; the baseline comes first."""
    if backends:
        for n in backends:
            get_backend(n)  # an unknown name fails here with the known ones
        names = list(backends)
    else:  # the target's backends that this installation has
        names = [n for n in target.backends() if n in registry.names()]
    rows: list[tuple[str, str, str | None]] = [("onnxruntime", "fp32", None)]
    for name in names:
        be = get_backend(name)
        why = be.target_support(target)
        if why is not None:
            rows += [(name, p, why) for p in (precisions or ["fp32"])]
            continue
        avail = be.availability()
        can = be.precisions(target)
        with_data = be.calibrated_precisions(target)
        for p in precisions or list(can) + (list(with_data) if calibrated else []):
            if (name, p) == ("onnxruntime", "fp32"):
                continue
            if not avail.available:
                why = f"{avail.reason}; install it with: {be.install_command}"
            elif p not in can + with_data:
                why = f"backend {name} cannot run {p} on target {target.name}; it can: {', '.join(can + with_data)}"
            else:
                why = None
            rows.append((name, p, why))
    return rows


def option_sets(
    options: dict[str, dict[str, object]] | None, vary: dict[str, dict[str, list[object]]] | None
) -> dict[str, list[OptionSet]]:
    """backend -> [(options its rows are built with, the varied part or None)]: ``options[backend]``
    alone, or one entry per combination of ``vary[backend]``'s values over it (first values first).
    Every combination is validated by the backend's options model here, before anything runs."""
    out: dict[str, list[OptionSet]] = {}
    for backend, keys in (vary or {}).items():
        be = get_backend(backend)  # an unknown name fails here with the known ones
        if not keys or any(not values for values in keys.values()):
            raise BadInputError(f"--vary {backend}: give KEY=VALUE1,VALUE2,...")
        base = dict((options or {}).get(backend) or {})
        combos: list[OptionSet] = []
        for values in itertools.product(*keys.values()):
            varied = dict(zip(keys, values))
            be.parse_options(base | varied)  # a bad key or value fails now, with the backend's message
            combos.append((base | varied, varied))
        out[backend] = combos
    return out


def _relevant(backend: str, precision: str, sets: list[OptionSet]) -> list[OptionSet]:
    """``sets`` for a row of ``precision``: varied options that do not apply to it (BackendOptions.applies_to)
    dropped, and the combinations that then coincide built once."""
    model = get_backend(backend).options_model
    out, seen = [], set()
    for opts, varied in sets:
        if varied is not None:
            dropped = {k for k in varied if not model.applies_to(k, precision)}
            varied = {k: v for k, v in varied.items() if k not in dropped}
            opts = {k: v for k, v in (opts or {}).items() if k not in dropped}
        key = repr(sorted((varied or {}).items()))
        if key not in seen:
            seen.add(key)
            out.append((opts, varied))
    return out


def plan_rows(request: CompareRequest) -> list[PlannedRow]:
    """Every row of ``request``, the onnxruntime FP32 baseline first (built with the first option set when
    onnxruntime's options are varied; its other sets are rows of their own right after it)."""
    sets = option_sets(request.options, request.vary)
    rows = _backend_rows(request.target, request.backends, request.precisions, request.calibration is not None)
    missing = sorted(set(sets) - {b for b, _, _ in rows})
    if missing:
        raise BadInputError(f"--vary names {', '.join(missing)}, which this run has no rows for")
    plan = [PlannedRow(b, p, opts, varied, why) for i, (b, p, why) in enumerate(rows)
            for opts, varied in _relevant(b, p, sets.get(b) or [((request.options or {}).get(b), None)])[: 1 if i == 0 else None]]
    plan[1:1] = [PlannedRow("onnxruntime", "fp32", opts, varied) for opts, varied in sets.get("onnxruntime", [])[1:]]
    return plan
