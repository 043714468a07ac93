"""Where a compiled model runs: here, or on a board reached over the network (SSH for now)."""

from __future__ import annotations


def is_remote(device: str | None) -> bool:
    """True for a device string that names another machine (ssh://...); None and "local" are here."""
    return device is not None and device not in ("", "local")
