"""Run one unit of work (a comparison row, a profile) in a child process with a time limit.

A segfault, an abort, a hang or an exception in the child becomes an ``Outcome`` with the cause;
the parent carries on. Children are started with ``spawn`` so no backend state leaks between them.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .errors import EdgeccError

Kind = Literal["ok", "error", "crash", "timeout"]


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


def _child(conn, fn: Callable[..., Any], args: tuple) -> None:
    try:
        result = fn(*args)
    except EdgeccError as e:
        conn.send(("error", type(e).__name__, str(e), e.exit_code))
    except BaseException as e:  # anything else is a bug or a backend failure: report it with its traceback
        tb = traceback.format_exc(limit=8)
        conn.send(("error", type(e).__name__, f"{type(e).__name__}: {e}\n{tb}", 1))
    else:
        conn.send(("ok", result))
    finally:
        conn.close()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the process crashed ({name})"
    return f"the process exited with code {exitcode} without a result"


def run_isolated(fn: Callable[..., Any], *args: Any, timeout_s: float | None = None) -> Outcome:
    """Call ``fn(*args)`` in a fresh child process; ``fn`` and ``args`` must be picklable."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            proc.kill()
            proc.join(5)
            return Outcome("timeout", message=f"timed out after {timeout_s:g} s and was stopped")
        try:
            msg = parent.recv()
        except EOFError:
            proc.join(5)
            return Outcome("crash", message=_describe_exit(proc.exitcode), exit_code=proc.exitcode)
        proc.join(30)
        if msg[0] == "ok":
            return Outcome("ok", value=msg[1])
        _, error_type, message, code = msg
        return Outcome("error", message=message, error_type=error_type, exit_code=code)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        parent.close()
