"""The committed Fashion-MNIST benchmark files (benchmarks/fashion_mnist.py): subsets that load through
edgecc.data with the shapes and labels the models need, and trained models that reach a stated top-1 on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecc import api
from edgecc.data import load_dataset
from edgecc.graph.io import prepare_model

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
EVAL, CALIB = DATA / "fmnist_eval.npz", DATA / "fmnist_calib.npz"
# top-1 (%) on the 500 committed test images in onnxruntime: 87.2 (ResNet-style) and 86.6 (MobileNetV2-style),
# measured when the models were trained (one epoch each); the floors sit a little under.
MIN_TOP1 = {"fmnist_resnet.onnx": 86.0, "fmnist_mobilenet.onnx": 85.0}


@pytest.fixture(scope="module")
def inputs():
    return prepare_model(str(DATA / "fmnist_resnet.onnx")).inputs


def test_eval_subset_loads_with_50_labelled_images_per_class(inputs):
    ds = load_dataset(str(EVAL), inputs, need_labels=True)
    assert ds.samples == 500 and len(ds.batches) == 500 and set(ds.valid) == {1}
    assert ds.batches[0]["pixels"].shape == (1, 1, 28, 28) and ds.batches[0]["pixels"].dtype == np.float32
    assert ds.labels.dtype == np.int64 and np.bincount(ds.labels, minlength=10).tolist() == [50] * 10
    pixels = np.concatenate([b["pixels"] for b in ds.batches])
    assert pixels.min() == 0.0 and pixels.max() == 255.0 and np.array_equal(pixels, np.round(pixels))


def test_calibration_subset_has_500_unlabelled_training_images(inputs):
    with np.load(CALIB) as raw:
        assert sorted(raw.files) == ["pixels"] and raw["pixels"].shape == (500, 1, 28, 28)
        assert raw["pixels"].dtype == np.uint8
    ds = load_dataset(str(CALIB), inputs)
    assert ds.samples == 500 and ds.labels is None


@pytest.mark.parametrize("name", sorted(MIN_TOP1))
def test_committed_model_reaches_its_top1_on_the_subset(name):
    result = api.evaluate(DATA / name, str(EVAL), metrics=("top1",))
    assert result.samples == 500
    assert result.top1 >= MIN_TOP1[name], f"{name}: top-1 {result.top1:.1f}% < {MIN_TOP1[name]}%"


def test_models_have_the_structure_they_stand_for():
    """The ResNet-style net adds residuals; the MobileNetV2-style one has depthwise convolutions and ReLU6."""
    resnet = onnx.load(DATA / "fmnist_resnet.onnx").graph
    mobile = onnx.load(DATA / "fmnist_mobilenet.onnx").graph
    for g in (resnet, mobile):
        assert [i.name for i in g.input] == ["pixels"] and [o.name for o in g.output] == ["logits"]
    assert sum(n.op_type == "Add" for n in resnet.node) >= 4
    weights = {t.name: t.dims for t in mobile.initializer}

    def depthwise(node: onnx.NodeProto) -> bool:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        return node.op_type == "Conv" and group > 1 and weights[node.input[1]][1] == 1

    assert sum(map(depthwise, mobile.node)) >= 6
    assert sum(n.op_type == "Clip" for n in mobile.node) >= 6  # ReLU6
