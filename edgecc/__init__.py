"""edgecc: compile an ONNX model for a named edge device and show, measured, which backend runs it fastest."""

__version__ = "0.1.0"
