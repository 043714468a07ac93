"""edgecc: compile an ONNX model for a named edge device and show, measured, which backend runs it fastest."""

__version__ = "0.1.0"


def _load_backends() -> None:
    """Import edgecc.backends, whose registry registers every backend's target settings model."""
    import importlib

    importlib.import_module(f"{__name__}.backends")


def _wire_layers() -> None:
    """The one place two layers meet against the import order: targets (low) validate each backend's
    table with the settings model that backend registers (edgecc.backends, higher up). The targets
    layer never imports backends; it is handed this loader, which it runs the first time it needs a
    settings model it does not know, so targets validate the same whatever a program imported first."""
    from .targets.settings import backend_settings

    backend_settings.add_loader(_load_backends)


_wire_layers()
