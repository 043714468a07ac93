"""compare and profile on a board over SSH: the same results as running edgecc there by hand.

``compare_on_device`` prepares the model here (input shapes fixed, zoo models built), copies it to
the board, runs ``edgecc compare --json`` there and returns its report; with ``artifacts_dir`` the
board's artifacts (manifest.json, the backend's files such as a TensorRT model.engine, reference.npz)
are copied back too. ``profile_on_device`` copies an artifact directory to the board and profiles it
there (for artifacts that move between machines; a TensorRT engine runs only on the GPU that built it).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath

from ..artifact import load_artifact
from ..errors import BadInputError
from ..report.schema import CompareReport, ResultRow
from .device import SshDevice
from .ssh import open_session, remote_failure, remote_path, run_sync


def _settings_args(settings) -> list[str]:  # noqa: ANN001 - api.ProfileSettings
    return ["--warmup", str(settings.warmup), "--runs", str(settings.runs), "--min-time", str(settings.min_time_s),
            "--layer-runs", str(settings.layer_runs)]


def compare_on_device(
    device: SshDevice,
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
) -> CompareReport:
    """``edgecc compare`` run on ``device``; the report's rows were measured there."""
    from ..graph.io import input_shapes_arg, prepare_model, save_model
    from ..profiling.timing import ProfileSettings

    settings = settings or ProfileSettings()
    prepared = prepare_model(model, input_shapes_arg(input_shapes))
    keep = Path(artifacts_dir) if artifacts_dir is not None else None
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise BadInputError(f"{keep}: --artifacts-dir must be empty or new for a remote compare (files are copied into it)")
    if targets_file is not None and not Path(targets_file).is_file():
        raise BadInputError(f"{targets_file}: no such targets file")
    with tempfile.TemporaryDirectory(prefix="edgecc-ssh-") as tmp:
        local_model = save_model(prepared.model, Path(tmp) / "model.onnx")

        async def job() -> CompareReport:
            async with open_session(device) as s:
                work = s.workdir
                assert work is not None
                await s.put(local_model, remote_path(work, "model.onnx"))
                args = ["compare", remote_path(work, "model.onnx"), "--target", target,
                        "--json", remote_path(work, "report.json"), "--timeout", str(timeout_s), *_settings_args(settings)]
                if backends:
                    args += ["--backends", ",".join(backends)]
                if precisions:
                    args += ["--precisions", ",".join(precisions)]
                if targets_file is not None:
                    await s.put(Path(targets_file), remote_path(work, "targets.toml"))
                    args += ["--targets-file", remote_path(work, "targets.toml")]
                if keep is not None:
                    args += ["--artifacts-dir", remote_path(work, "artifacts")]
                r = await s.edgecc(args, timeout_s=None)
                if r.exit_status != 0:
                    raise remote_failure(device, r, "edgecc compare")
                await s.get(remote_path(work, "report.json"), Path(tmp) / "report.json")
                if keep is not None:
                    keep.parent.mkdir(parents=True, exist_ok=True)
                    await s.get(remote_path(work, "artifacts"), keep)
                return CompareReport.model_validate_json((Path(tmp) / "report.json").read_bytes())

        report = run_sync(job())
    rows = []
    for row in report.results:
        if row.artifact and keep is not None:
            local = keep / PurePosixPath(row.artifact).name  # the board's paths are POSIX
            row = row.model_copy(update={"artifact": str(local) if local.is_dir() else None})
        rows.append(row)
    return report.model_copy(update={"model": prepared.source, "results": rows,
                                     "measured_on": f"{report.measured_on} (over SSH: {device.where})"})


def profile_on_device(device: SshDevice, artifact_dir: str | os.PathLike[str], settings,  # noqa: ANN001
                      *, timeout_s: float = 1800) -> ResultRow:
    """``edgecc profile`` of a local artifact, run on ``device`` (the artifact is copied there first)."""
    from ..profiling.timing import ProfileSettings

    settings = settings or ProfileSettings()
    artifact = load_artifact(artifact_dir)  # checksums checked here, before anything is copied

    async def job() -> ResultRow:
        async with open_session(device) as s:
            work = s.workdir
            assert work is not None
            remote_art = remote_path(work, "artifact")
            await s.put(artifact.path, remote_art)
            args = ["profile", remote_art, "--json", remote_path(work, "row.json"), *_settings_args(settings)]
            r = await s.edgecc(args, timeout_s=timeout_s)
            with tempfile.TemporaryDirectory(prefix="edgecc-ssh-") as tmp:
                # profile writes its row before exiting 4 (verification failed): that row is the answer
                if r.exit_status in (0, 1, 4) and await s.exists(remote_path(work, "row.json")):
                    await s.get(remote_path(work, "row.json"), Path(tmp) / "row.json")
                    row = ResultRow.model_validate(json.loads((Path(tmp) / "row.json").read_text()))
                    return row.model_copy(update={"artifact": str(artifact.path)})
                raise remote_failure(device, r, "edgecc profile")

    return run_sync(job())
