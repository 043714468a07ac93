"""Everything that reads or rewrites ONNX, on onnx_ir."""
