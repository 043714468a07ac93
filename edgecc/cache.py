"""Where edgecc keeps its caches (compiled models), per user.

The location is the platform's user cache directory (e.g. ~/.cache/edgecc). ``EDGECC_CACHE_DIR``
replaces it, for tests and debugging only.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_DIR_ENV = "EDGECC_CACHE_DIR"


def cache_dir(sub: str) -> Path:
    """The cache directory ``sub`` (e.g. "openvino"), created if missing."""
    base = os.environ.get(CACHE_DIR_ENV) or platformdirs.user_cache_dir("edgecc")
    path = Path(base) / sub
    path.mkdir(parents=True, exist_ok=True)
    return path
