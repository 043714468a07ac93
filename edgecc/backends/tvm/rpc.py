"""Boards reached over TVM RPC: a server started on the board (python -m tvm.exec.rpc_server), directly
(rpc://HOST:PORT) or through a tracker that hands out boards by key (rpc://TRACKER:PORT/KEY).

Every network step has a timeout; a board that cannot be reached is BackendUnavailable (exit 3) with
the address and what to check, never a hang or a traceback.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import numpy as np

from ...errors import BackendUnavailable
from ..base import Runner
from .library import LIBRARY_FILE, outputs_by_name

if TYPE_CHECKING:
    from ...artifact import Artifact
    from ...remote.device import RpcDevice

CONNECT_TIMEOUT_S = 10.0
# The server ends a session after this long; a profile of a slow model on a small board takes minutes.
SESSION_TIMEOUT_S = 1800.0


def probe(address: RpcDevice, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, with the reason, when nothing accepts connections at ``address``."""
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s):
            pass
    except socket.gaierror as e:
        raise BackendUnavailable(f"{address.url}: cannot resolve host {address.host} ({e.strerror})") from None
    except TimeoutError:
        raise BackendUnavailable(
            f"{address.url}: no answer within {timeout_s:.0f} s; is the board on and reachable (firewall, address)?"
        ) from None
    except OSError as e:
        what = "tracker" if address.key else "RPC server"
        raise BackendUnavailable(
            f"{address.url}: cannot connect ({e.strerror or e}); start the {what} there "
            f"(on the board: python -m tvm.exec.rpc_server --host 0.0.0.0 --port {address.port})"
        ) from None


def connect(address: RpcDevice, *, timeout_s: float = SESSION_TIMEOUT_S):
    """An RPC session with the board (through the tracker when the address has a key)."""
    from tvm import rpc

    probe(address, min(timeout_s, CONNECT_TIMEOUT_S))
    try:
        if address.key:
            tracker = rpc.connect_tracker(address.host, address.port)
            return tracker.request(address.key, session_timeout=timeout_s, max_retry=2)
        return rpc.connect(address.host, address.port, session_timeout=timeout_s)
    except Exception as e:  # TVM's RPC raises plain RuntimeError/TVM errors; each means the board said no
        if isinstance(e, KeyboardInterrupt):
            raise
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise BackendUnavailable(f"{address.url}: the RPC handshake failed: {first}") from None


class RpcRunner(Runner):
    """Runs a TVM artifact on a remote board: uploads the library, runs it through a remote Relax VM.

    Latency measured through this runner includes sending inputs and fetching outputs over the network.
    """

    def __init__(self, artifact: Artifact, device: RpcDevice, *, timeout_s: float = SESSION_TIMEOUT_S):
        super().__init__(artifact)
        from tvm import relax

        self.address = device
        self._session = connect(self.address, timeout_s=timeout_s)
        try:
            self._session.upload(str(artifact.file(LIBRARY_FILE)), "edgecc_model.so")
            self._lib = self._session.load_module("edgecc_model.so")
        except Exception as e:  # the board's TVM raises plain errors when it cannot load the library
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise BackendUnavailable(
                f"{self.address.url}: the board cannot load this artifact ({artifact.manifest.target.arch} code for "
                f"{artifact.manifest.target.name}): {first}"
            ) from None
        self._dev = self._session.cpu()
        self._vm = relax.VirtualMachine(self._lib, self._dev)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tvm

        try:
            args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[s.name]), self._dev) for s in self.inputs]
            return outputs_by_name(self._vm["main"](*args), [s.name for s in self.outputs])
        except Exception as e:  # the session broke (board gone, session time over): say so, not a traceback
            if isinstance(e, KeyboardInterrupt):
                raise
            lines = [l for l in str(e).strip().splitlines() if l.strip()]
            raise BackendUnavailable(f"{self.address.url}: the board stopped answering: {lines[-1] if lines else type(e).__name__}") from None

    def close(self) -> None:
        # A tracker-registered server serves one session at a time: drop every remote object first.
        self._vm = None
        self._lib = None
        self._session = None
