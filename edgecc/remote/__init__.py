"""Where a compiled model runs when it is not this machine: a board reached over SSH, where edgecc
itself runs (remote.ssh, remote.board), or over TVM RPC, where a TVM runtime serves (remote.rpc)."""

from __future__ import annotations


def is_remote(device: str | None) -> bool:
    """True for ssh://... : the whole job runs on the board. rpc:// devices are handled by the backend."""
    return device is not None and device.startswith("ssh://")
