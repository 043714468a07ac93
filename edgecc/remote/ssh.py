"""Run edgecc on a board over SSH: copy the model (or an artifact) there, run ``python -m edgecc`` with
``--json``, bring back the report and, when asked, the artifacts (manifest, engine, reference data).

This is how TensorRT is used from a laptop: engines must be built on the board that runs them.
The board needs edgecc installed (with the backends it should run); its python is ``python3`` unless
the device URL says otherwise:

    ssh://user@host[:port][?python=/path/to/venv/bin/python&identity=~/.ssh/key&known_hosts=FILE&connect_timeout=S]

Keys, agent and ~/.ssh/config are used as OpenSSH would (through asyncssh). Failures are clear
errors: an unreachable host, a refused connection, a failed login or an unverified host key exit 3
(after ``retries`` more attempts where retrying can help); a failing remote edgecc exits with its code
(2 bad input, 3 unavailable, 4 verification) and its message, prefixed with the host.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import socket
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import EXIT_BUG, BackendUnavailable, BadInputError, EdgeccError, VerificationError
from .device import SshDevice

_ERRORS_BY_CODE = {2: BadInputError, 3: BackendUnavailable, 4: VerificationError}


class RemoteCommandFailed(EdgeccError):
    """The remote edgecc failed in a way that has no local equivalent (a crash, a bug)."""

    exit_code = EXIT_BUG


@dataclass(frozen=True)
class RemoteResult:
    exit_status: int
    stdout: str
    stderr: str


class SshSession:
    """One SSH connection to a device: commands, file copies, a private work directory."""

    def __init__(self, device: SshDevice, conn: object):
        self.device = device
        self.conn = conn
        self.workdir: str | None = None

    async def run(self, argv: list[str], timeout_s: float | None = None) -> RemoteResult:
        import asyncssh

        # The time limit is enforced on the device by coreutils' timeout, which kills the command there:
        # closing an SSH channel does not stop a command that runs without a terminal.
        limited = ["timeout", "-s", "KILL", f"{timeout_s:g}", *argv] if timeout_s is not None else argv
        command = " ".join(shlex.quote(a) for a in limited)
        too_long = BackendUnavailable(
            f"{self.device.where}: `{_short(argv)}` did not finish within {timeout_s or 0:g} s and was stopped"
        )
        try:
            # the local wait is a backstop in case the device's timeout is absent or stuck
            done = await self.conn.run(command, check=False, timeout=None if timeout_s is None else timeout_s + 30)  # type: ignore[attr-defined]
        except asyncssh.TimeoutError:
            raise too_long from None
        except (asyncssh.Error, OSError) as e:
            raise BackendUnavailable(f"{self.device.where}: the connection failed while running `{_short(argv)}`: {_reason(e)}") from None
        status = done.exit_status if done.exit_status is not None and done.exit_status >= 0 else 255
        if done.exit_signal:  # killed by a signal: the shell's convention, 128 + its number
            status = 128 + getattr(signal.Signals, f"SIG{done.exit_signal[0]}", signal.SIGTERM).value
        if timeout_s is not None and status == 128 + signal.SIGKILL.value:
            raise too_long
        return RemoteResult(status, _text(done.stdout), _text(done.stderr))

    async def make_workdir(self) -> str:
        r = await self.run(["mktemp", "-d", "/tmp/edgecc-remote-XXXXXXXX"], timeout_s=60)
        if r.exit_status != 0 or not r.stdout.strip():
            raise BackendUnavailable(f"{self.device.where}: cannot make a work directory ({r.stderr.strip() or r.exit_status})")
        self.workdir = r.stdout.strip()
        return self.workdir

    async def remove_workdir(self) -> None:
        if self.workdir:
            try:
                await self.run(["rm", "-rf", self.workdir], timeout_s=60)
            except EdgeccError:
                pass  # the connection is gone; the board cleans /tmp itself
            self.workdir = None

    async def exists(self, remote: str) -> bool:
        return (await self.run(["test", "-e", remote], timeout_s=60)).exit_status == 0

    async def put(self, local: Path, remote: str) -> None:
        await self._sftp("put", str(local), remote)

    async def get(self, remote: str, local: Path) -> None:
        await self._sftp("get", remote, str(local))

    async def _sftp(self, verb: str, src: str, dst: str) -> None:
        import asyncssh

        try:
            async with self.conn.start_sftp_client() as sftp:  # type: ignore[attr-defined]
                await getattr(sftp, verb)(src, dst, recurse=True)
        except (asyncssh.Error, OSError) as e:
            raise BackendUnavailable(f"{self.device.where}: copying {src} -> {dst} failed: {_reason(e)}") from None

    async def edgecc(self, args: list[str], timeout_s: float | None) -> RemoteResult:
        """Run ``python -m edgecc ARGS`` on the device; a missing python or edgecc is a clear error."""
        r = await self.run([self.device.python, "-m", "edgecc", *args], timeout_s=timeout_s)
        if r.exit_status == 127:
            raise BackendUnavailable(f"{self.device.where}: {self.device.python} is not found there; install Python 3.11+ "
                                     "and edgecc on the device, or give its path with ?python=/path/to/python")
        if "No module named edgecc" in r.stderr:
            raise BackendUnavailable(f"{self.device.where}: edgecc is not installed for {self.device.python} there; "
                                     "pip install edgecc on the device (or give a venv's python with ?python=...)")
        return r


def _text(data: object) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else str(data)


def _short(argv: list[str]) -> str:
    text = " ".join(argv)
    return text if len(text) <= 80 else text[:77] + "..."


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or str(e) or type(e).__name__
    return str(reason).strip()


def remote_failure(device: SshDevice, r: RemoteResult, what: str) -> EdgeccError:
    """The error a failed remote edgecc becomes here: same exit code (2, 3, 4), its own message."""
    lines = [l.strip() for l in r.stderr.splitlines() if l.strip()]
    message = next((l.removeprefix("error:").strip() for l in reversed(lines) if l.startswith("error:")), None)
    if message is None:
        message = " | ".join(lines[-3:]) or f"exit status {r.exit_status}, no message"
    cls = _ERRORS_BY_CODE.get(r.exit_status)
    if cls is not None:
        return cls(f"on {device.where}: {message}")
    return RemoteCommandFailed(f"on {device.where}: {what} failed (exit status {r.exit_status}): {message}")


async def connect(device: SshDevice):  # noqa: ANN201 - asyncssh.SSHClientConnection
    """Open a connection, retrying where it can help (refused, timed out, reset); a failed login,
    an unverified host key or an unknown host name fail at once. Raises BackendUnavailable."""
    try:
        import asyncssh
    except ImportError:
        raise BackendUnavailable('--device ssh:// needs asyncssh; install it with: pip install "edgecc[remote]"') from None

    kwargs: dict[str, object] = {
        "port": device.port, "connect_timeout": device.connect_timeout_s,
        "keepalive_interval": device.keepalive_s, "keepalive_count_max": 3,
    }
    if device.user:
        kwargs["username"] = device.user
    if device.identity:
        kwargs["client_keys"] = list(device.identity)
        kwargs["agent_path"] = None  # only the keys given
    if device.known_hosts:
        kwargs["known_hosts"] = device.known_hosts
    attempts = device.retries + 1
    last = ""
    for attempt in range(attempts):
        try:
            return await asyncssh.connect(device.host, **kwargs)
        except asyncssh.PermissionDenied as e:
            raise BackendUnavailable(f"{device.where}: authentication failed ({_reason(e)}): the key is not accepted "
                                     "for this user; check the user name and the key (?identity=PATH)") from None
        except asyncssh.HostKeyNotVerifiable as e:
            raise BackendUnavailable(f"{device.where}: the host key cannot be verified ({_reason(e)}); connect once "
                                     "with ssh to add it to known_hosts, or give ?known_hosts=FILE") from None
        except socket.gaierror as e:
            raise BackendUnavailable(f"{device.where}: unknown host ({e.strerror})") from None
        except ConnectionRefusedError:
            last = "connection refused (is sshd running there, and is the port right?)"
        except (asyncio.TimeoutError, TimeoutError):
            last = f"no SSH answer within {device.connect_timeout_s:g} s"
        except (asyncssh.Error, OSError) as e:
            last = _reason(e)
        except ValueError as e:  # asyncssh reports unreadable key files this way
            raise BadInputError(f"{device.where}: {e}") from None
        if attempt + 1 < attempts:
            await asyncio.sleep(device.retry_delay_s * 2**attempt)
    raise BackendUnavailable(f"cannot reach {device.where} after {attempts} attempt(s): {last}")


class open_session:
    """``async with open_session(device) as s``: a connection with a private work directory, both
    removed on exit."""

    def __init__(self, device: SshDevice):
        self.device = device
        self.session: SshSession | None = None

    async def __aenter__(self) -> SshSession:
        conn = await connect(self.device)
        self.session = SshSession(self.device, conn)
        try:
            await self.session.make_workdir()
        except BaseException:
            conn.close()
            raise
        return self.session

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        try:
            await self.session.remove_workdir()
        finally:
            self.session.conn.close()  # type: ignore[attr-defined]
            await self.session.conn.wait_closed()  # type: ignore[attr-defined]


def run_sync(coro):  # noqa: ANN001, ANN201
    """Run a coroutine from synchronous code (the CLI, the API)."""
    return asyncio.run(coro)


def remote_path(*parts: str) -> str:
    return str(PurePosixPath(*parts))
