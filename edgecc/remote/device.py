"""Where a model runs, as typed data: this machine, a board reached over SSH, or a TVM RPC server or tracker.

``parse_device`` reads a ``--device`` string once; everything after works with the typed device
(``edgecc.remote.run`` decides what runs where). This module imports nothing of edgecc but its errors, so
that backends may name these types.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import BadInputError

DEFAULT_PORT = 22
Kind = Literal["local", "ssh", "rpc"]
KINDS: tuple[Kind, ...] = ("local", "ssh", "rpc")


@dataclass(frozen=True)
class LocalDevice:
    """This machine."""

    @property
    def url(self) -> str:
        return "local"

    @property
    def where(self) -> str:
        return "this machine"


@dataclass(frozen=True)
class SshDevice:
    """A machine reached over SSH, with how to run edgecc there."""

    host: str
    user: str | None = None
    port: int = DEFAULT_PORT
    python: str = "python3"
    identity: tuple[str, ...] = ()
    known_hosts: str | None = None
    connect_timeout_s: float = 15.0
    retries: int = 2
    retry_delay_s: float = 0.5
    keepalive_s: float = 30.0

    @property
    def where(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port != DEFAULT_PORT else ""
        return f"{user}{self.host}{port}"


_QUERY_KEYS = ("python", "identity", "known_hosts", "connect_timeout", "retries")


def parse_ssh_device(url: str) -> SshDevice:
    """``ssh://[user@]host[:port][?python=...&identity=...&known_hosts=...&connect_timeout=S&retries=N]``."""
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise BadInputError(f"--device {url!r}: expected ssh://user@host[:port] (or 'local')")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise BadInputError(f"--device {url!r}: the port is not a number from 1 to 65535") from None
    if parts.path not in ("", "/"):
        raise BadInputError(f"--device {url!r}: no path expected after the host; options go in ?python=...")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - set(_QUERY_KEYS))
    if unknown:
        raise BadInputError(f"--device {url!r}: unknown option(s) {', '.join(unknown)}; known: {', '.join(_QUERY_KEYS)}")
    one = {k: v[-1] for k, v in query.items()}
    kwargs: dict[str, object] = {}
    if "python" in one:
        kwargs["python"] = one["python"]
    if "identity" in one:
        kwargs["identity"] = tuple(os.path.expanduser(p) for v in query["identity"] for p in v.split(",") if p)
    if "known_hosts" in one:
        kwargs["known_hosts"] = os.path.expanduser(one["known_hosts"])
    try:
        if "connect_timeout" in one:
            kwargs["connect_timeout_s"] = float(one["connect_timeout"])
        if "retries" in one:
            kwargs["retries"] = int(one["retries"])
    except ValueError:
        raise BadInputError(f"--device {url!r}: connect_timeout and retries must be numbers") from None
    if kwargs.get("connect_timeout_s", 1.0) <= 0 or kwargs.get("retries", 0) < 0:  # type: ignore[operator]
        raise BadInputError(f"--device {url!r}: connect_timeout must be > 0 and retries >= 0")
    user = unquote(parts.username) if parts.username else None
    return SshDevice(host=parts.hostname, user=user, port=port, **kwargs)  # type: ignore[arg-type]



_ADDRESS = re.compile(r"^rpc://(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})(?:/(?P<key>[A-Za-z0-9_.:-]+))?/?$")


@dataclass(frozen=True)
class RpcDevice:
    """A TVM RPC server (rpc://HOST:PORT) or a tracker handing out the boards registered under ``key``."""

    host: str
    port: int
    key: str | None

    @property
    def url(self) -> str:
        return f"rpc://{self.host}:{self.port}" + (f"/{self.key}" if self.key else "")

    @property
    def where(self) -> str:
        return self.url


def parse_rpc_device(device: str) -> RpcDevice:
    """rpc://HOST:PORT (a server) or rpc://HOST:PORT/KEY (a tracker and the board's key)."""
    m = _ADDRESS.match(device.strip())
    if m is None:
        raise BadInputError(
            f"device '{device}' is not an RPC address; expected rpc://HOST:PORT (an RPC server) or "
            "rpc://TRACKER:PORT/KEY (a board registered with a tracker)"
        )
    port = int(m["port"])
    if not 0 < port < 65536:
        raise BadInputError(f"device '{device}': port {port} is out of range")
    return RpcDevice(m["host"].strip("[]"), port, m["key"])


Device = LocalDevice | SshDevice | RpcDevice
LOCAL = LocalDevice()


def parse_device(text: str | None, kinds: tuple[Kind, ...] = KINDS) -> Device:
    """The device ``text`` names: None or 'local' (this machine), ssh://... or rpc://..., of the ``kinds`` the
    command serves. Any other text is read by the parser of the last remote kind served, whose error says
    what it expected (for profile, the RPC address form)."""
    if text is None or text == "local":
        return LOCAL
    remote = [k for k in kinds if k != "local"]
    if not remote:
        raise BadInputError(f"--device {text!r}: this command runs on this machine only")
    kind = next((k for k in remote if text.startswith(f"{k}://")), remote[-1])
    return parse_ssh_device(text) if kind == "ssh" else parse_rpc_device(text)
