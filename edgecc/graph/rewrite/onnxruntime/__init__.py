"""Rules for models that will run on onnxruntime only: its contrib ops (com.microsoft domain)."""

from __future__ import annotations

from . import gelu_contrib

MODULES = (gelu_contrib,)


def rules() -> list:
    return [r for m in MODULES for r in m.rules]
