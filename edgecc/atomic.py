"""Writing files so that a reader (or a crash) never sees half of one: write beside, then rename."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import BadInputError


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    An unwritable destination is the user's to fix: BadInputError naming it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BadInputError(f"{path}: cannot write: {e.strerror}") from None
    return path
