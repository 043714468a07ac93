"""edgecc: compile an ONNX model for a named edge device and show, measured, which backend runs it fastest."""

__version__ = "0.1.0"


def _wire_layers() -> None:
    """The one place two layers meet against the import order: targets (low) validate each backend's
    table with the settings model that backend registers (edgecc.backends, higher up). The targets
    layer never imports backends; it is handed a loader here, which it runs the first time it needs a
    settings model it does not know, so targets validate the same whatever a program imported first."""
    import importlib

    from .targets.settings import backend_settings

    backend_settings.add_loader(lambda: importlib.import_module(f"{__name__}.backends") and None)


_wire_layers()
