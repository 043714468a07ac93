"""Where a model runs, decided in this one place: this machine, a board reached over SSH (edgecc runs
there and sends its results back), or a board behind a TVM RPC server or tracker (the backend's RPC
runner, opened and timed from here: the backend hook ``Backend.open_rpc_runner``).

The CLI and the API parse ``--device`` once (``parse_device`` with the kinds the command serves) and
hand the typed device to ``profile_on`` (every kind) or ``compare_remote`` (a board; the comparison here
is api.compare).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..artifact import load_artifact
from ..backends import get_backend
from ..errors import BackendUnavailable, BadInputError
from ..isolation import default_memory_limit, run_isolated
from ..pipeline import profile_artifact, row_from_outcome
from ..profiling.inputs import load_inputs
from .device import Device, Kind, LocalDevice, RpcDevice, SshDevice

if TYPE_CHECKING:
    from ..report.schema import CompareReport, ResultRow

# The devices each command serves: profile anywhere; compare here or on a board over SSH (rows are
# compiled where they run); tune measures here or on boards behind a TVM RPC tracker.
PROFILE_DEVICES: tuple[Kind, ...] = ("local", "ssh", "rpc")
COMPARE_DEVICES: tuple[Kind, ...] = ("local", "ssh")
TUNE_DEVICES: tuple[Kind, ...] = ("local", "rpc")


def profile_on(
    device: Device,
    artifact_dir: str | os.PathLike[str],
    settings,  # noqa: ANN001 - api.ProfileSettings
    *,
    inputs: str | None = None,
    isolate: bool = True,
    timeout_s: float | None = 1800,
    memory_limit: int | None = None,
) -> ResultRow:
    """Profile the artifact at ``artifact_dir`` on ``device``: here or through the backend's RPC runner (in a
    child process unless ``isolate`` is False, stopped after ``timeout_s`` s or past ``memory_limit`` bytes),
    or on an SSH board by the edgecc installed there."""
    if isinstance(device, SshDevice):
        from .board import profile_on_device

        if inputs is not None:
            raise BadInputError("--inputs is not supported with a remote --device yet")
        return profile_on_device(device, artifact_dir, settings, timeout_s=timeout_s or 1800)
    artifact = load_artifact(artifact_dir)  # checksums are checked here, before any work
    backend = get_backend(artifact.manifest.backend)
    backend.require()
    if not isolate:
        return _profile_job(str(artifact.path), settings, inputs, device)
    outcome = run_isolated(
        _profile_job, str(artifact.path), settings, inputs, device, timeout_s=timeout_s,
        memory_limit=memory_limit or default_memory_limit(),
    )
    if outcome.kind == "error" and outcome.exit_code in (2, 3):
        raise (BackendUnavailable if outcome.exit_code == 3 else BadInputError)(outcome.message)
    return row_from_outcome(outcome, artifact.manifest.backend, artifact.manifest.precision)


def _profile_job(path: str, settings, inputs: str | None, device: LocalDevice | RpcDevice) -> ResultRow:  # noqa: ANN001
    artifact = load_artifact(path)
    backend = get_backend(artifact.manifest.backend)
    feeds = load_inputs(inputs, artifact.inputs) if inputs else None
    there = (lambda: backend.open_rpc_runner(artifact, device)) if isinstance(device, RpcDevice) else None
    return profile_artifact(
        artifact, backend, warmup=settings.warmup, runs=settings.runs, min_time_s=settings.min_time_s,
        layer_runs=settings.layer_runs, feeds=feeds, open_runner=there,
    )


def compare_remote(
    device: SshDevice | RpcDevice,
    model: str | os.PathLike[str],
    target: str,
    *,
    backends: list[str] | None = None,
    precisions: list[str] | None = None,
    input_shapes: dict[str, tuple[int, ...]] | list[str] | None = None,
    settings,  # noqa: ANN001 - api.ProfileSettings
    timeout_s: float = 1800,
    artifacts_dir: str | os.PathLike[str] | None = None,
    targets_file: str | os.PathLike[str] | None = None,
    with_options: bool = False,
) -> CompareReport:
    """Compare ``model``'s rows on a board: ``edgecc compare`` run there over SSH, the report brought back
    (rows are compiled where they run). ``with_options``: backend options or --vary were given, which the
    board's compare does not take yet. The comparison on this machine is api.compare."""
    if isinstance(device, RpcDevice):
        raise BadInputError(f"compare runs here or on a board over SSH, not at {device.url}")
    from .board import compare_on_device

    if with_options:
        raise BadInputError("--option and --vary are not supported with an ssh:// --device yet: compare on the board "
                            "without them, or run edgecc compare on the board itself")
    return compare_on_device(
        device, model, target, backends=backends, precisions=precisions, input_shapes=input_shapes,
        settings=settings, timeout_s=timeout_s, artifacts_dir=artifacts_dir, targets_file=targets_file,
    )
