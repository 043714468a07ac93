"""Run one unit of work (a comparison row, a profile) in a child process with a time limit.

A segfault, an abort, a hang or an exception in the child becomes an ``Outcome`` with the cause;
the parent carries on. The child is a fresh ``python -m edgecc.isolation`` (not multiprocessing's
spawn, which re-imports the caller's ``__main__`` and so breaks scripts without a main guard); the
call and its result travel as pickles through files in a private temporary directory.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import EdgeccError

if TYPE_CHECKING:
    import psutil

Kind = Literal["ok", "error", "crash", "timeout", "memory"]
_POLL_S = 0.1


@dataclass
class Outcome:
    kind: Kind
    value: Any = None
    message: str = ""
    error_type: str = ""
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if exitcode == -signal.SIGKILL:  # nobody here sent it: the usual sender is the kernel's OOM killer
            return f"the process was killed ({name}; the system may have run out of memory)"
        return f"the process crashed ({name})"
    return f"the process exited with code {exitcode} without a result"


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced stderr (pytest capture, notebooks)
        return None


def default_memory_limit() -> int:
    """75% of this machine's memory: a runaway row is stopped before the kernel's OOM killer picks a victim."""
    from .targets.host import memory_bytes

    total = memory_bytes()
    if total is None:
        import psutil

        total = psutil.virtual_memory().total
    return int(total * 0.75)


def _tree_rss(proc: psutil.Process) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _wait(proc: subprocess.Popen, timeout_s: float | None, memory_limit: int | None) -> Outcome | None:
    """Wait for ``proc``; an Outcome when it had to be stopped (time or memory), else None."""
    import psutil

    watched = psutil.Process(proc.pid)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    peak = 0
    while proc.poll() is None:
        if deadline is not None and time.monotonic() > deadline:
            _kill_group(proc)
            return Outcome("timeout", message=f"timed out after {timeout_s:g} s and was stopped")
        if memory_limit is not None:
            peak = max(peak, _tree_rss(watched))
            if peak > memory_limit:
                _kill_group(proc)
                return Outcome(
                    "memory", message=f"used {peak / 2**30:.1f} GiB, over the memory limit of {memory_limit / 2**30:.1f} GiB, and was stopped"
                )
        time.sleep(_POLL_S)
    return None


def run_isolated(
    fn: Callable[..., Any], *args: Any, timeout_s: float | None = None, memory_limit: int | None = None
) -> Outcome:
    """Call ``fn(*args)`` in a fresh child process; ``fn`` must be importable by module and name,
    ``args`` picklable. The child is stopped past ``timeout_s`` seconds or ``memory_limit`` bytes of
    resident memory (its whole process tree). Its stdout goes to this process's stderr, so it never
    mixes with machine-readable output."""
    with tempfile.TemporaryDirectory(prefix="edgecc-job-") as tmp:
        job, result = Path(tmp) / "job.pkl", Path(tmp) / "result.pkl"
        with open(job, "wb") as f:
            pickle.dump(list(sys.path), f)  # first, so the child can import fn's module
            pickle.dump((fn, args), f)
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgecc.isolation", str(job), str(result)],
            stdin=subprocess.DEVNULL, stdout=_stderr_fd(), start_new_session=True,
        )
        try:
            stopped = _wait(proc, timeout_s, memory_limit)
        except BaseException:  # Ctrl-C in the parent: do not leave the child running
            _kill_group(proc)
            raise
        if stopped is not None:
            return stopped
        if not result.is_file():
            return Outcome("crash", message=_describe_exit(proc.returncode), exit_code=proc.returncode)
        with open(result, "rb") as f:
            msg = pickle.load(f)
    if msg[0] == "ok":
        return Outcome("ok", value=msg[1])
    _, error_type, message, code = msg
    return Outcome("error", message=message, error_type=error_type, exit_code=code)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _child_main(job: str, result: str) -> None:
    with open(job, "rb") as f:
        sys.path[:] = pickle.load(f)
        fn, args = pickle.load(f)
    try:
        msg: tuple = ("ok", fn(*args))
    except EdgeccError as e:
        msg = ("error", type(e).__name__, str(e), e.exit_code)
    except BaseException as e:  # anything else is a bug or a backend failure: report it with its traceback
        tb = traceback.format_exc(limit=8)
        msg = ("error", type(e).__name__, f"{type(e).__name__}: {e}\n{tb}", 1)
    tmp = result + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(msg, f)
    os.replace(tmp, result)  # the parent sees a whole result or none


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
