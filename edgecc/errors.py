"""The one hierarchy of user-facing errors and the exit codes the CLI maps them to.

Exit codes (documented in README.md):
    0  success
    1  a bug in edgecc (an unexpected exception; the CLI prints a traceback only for these)
    2  bad input: a file, model, target, flag or data set the user gave
    3  a backend (or the hardware it needs) is unavailable here
    4  outputs failed verification against the onnxruntime reference
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_VERIFICATION = 4


class EdgeccError(Exception):
    """Base of every error the user can cause or fix. Its message is one line meant for a person."""

    exit_code: int = EXIT_BAD_INPUT


class BadInputError(EdgeccError):
    """A file, flag, or value given by the user is wrong."""


class ModelError(BadInputError):
    """The ONNX model cannot be read, is invalid, or lacks what is needed (e.g. input shapes)."""


class UnknownNameError(BadInputError):
    """A name (target, backend, zoo model, precision) is not known. The message lists or suggests known ones."""


class UnsupportedError(BadInputError):
    """The request is well formed but this backend/target cannot do it (an op, a precision)."""


class ArtifactError(BadInputError):
    """An artifact directory is missing, corrupt, or does not match its manifest."""


class BackendUnavailable(EdgeccError):
    """A backend's package or hardware is missing. The message carries the exact install command."""

    exit_code = EXIT_UNAVAILABLE


class MissingExtra(BackendUnavailable):
    """An optional feature's package is missing (torch for fine-tuning). The message carries the exact install
    command of the extra that brings it."""


class VerificationError(EdgeccError):
    """A compiled model's outputs are outside the tolerance against the onnxruntime reference."""

    exit_code = EXIT_VERIFICATION


class EdgeccWarning(UserWarning):
    """Something the user should know that does not stop the work (e.g. NaN weights). The CLI prints
    it as one 'warning:' line."""


def suggest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return ' (did you mean X?)' for the closest known name, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""
