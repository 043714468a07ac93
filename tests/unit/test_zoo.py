"""The model zoo: every entry builds a valid, deterministic, runnable, numerically healthy model."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgecc import zoo
from edgecc.errors import UnknownNameError

# Output shapes at each entry's default_shapes.
EXPECTED_OUTPUTS = {
    "bert-tiny": {"last_hidden_state": (1, 128, 128), "pooler_output": (1, 128)},
    "mobilenetv2": {"logits": (1, 1000)},
    "resnet18": {"logits": (1, 1000)},
    "resnet50": {"logits": (1, 1000)},
    "tinycnn": {"logits": (1, 10)},
}
# torch's parameters() counts: torchvision for the CNNs, HF BertModel for bert-tiny.
EXPECTED_PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenetv2": 3_504_872,
    "bert-tiny": 4_385_920,
}
BERT_VOCAB = 30522


@functools.lru_cache(maxsize=None)
def built(name: str, seed: int = 0) -> onnx.ModelProto:
    return zoo.get(name).build(seed)


@functools.lru_cache(maxsize=None)
def session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(built(name).SerializeToString(), providers=["CPUExecutionProvider"])


def random_feeds(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal float inputs; BERT ids in range, full attention mask, token types in {0, 1}."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in shapes.items():
        if name == "input_ids":
            feeds[name] = rng.integers(0, BERT_VOCAB, shape, dtype=np.int64)
        elif name == "attention_mask":
            feeds[name] = np.ones(shape, np.int64)
        elif name == "token_type_ids":
            feeds[name] = rng.integers(0, 2, shape, dtype=np.int64)
        else:
            feeds[name] = rng.standard_normal(shape, dtype=np.float32)
    return feeds


def parameter_count(model: onnx.ModelProto) -> int:
    """Float initializer elements, leaving out BN running statistics (buffers, not parameters, in torch)."""
    running_stats = {n.input[i] for n in model.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    return sum(
        int(np.prod(t.dims))
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and t.name not in running_stats
    )


def test_registry_lists_the_expected_models():
    assert zoo.names() == sorted(EXPECTED_OUTPUTS)
    for name in zoo.names():
        entry = zoo.get(name)
        assert entry.name == name
        assert entry.description and "\n" not in entry.description


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownNameError) as caught:
        zoo.get("resnt50")
    message = str(caught.value)
    assert "did you mean resnet50" in message
    assert "known: bert-tiny, mobilenetv2, resnet18, resnet50, tinycnn" in message


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_model_is_valid_opset17_ir8(name):
    model = built(name)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.producer_name == "edgecc.zoo"
    assert model.doc_string == zoo.get(name).description


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_runs_in_onnxruntime_with_healthy_outputs(name):
    entry = zoo.get(name)
    sess = session(name)
    assert sorted(i.name for i in sess.get_inputs()) == sorted(entry.default_shapes)
    outputs = sess.run(None, random_feeds(entry.default_shapes))
    names = [o.name for o in sess.get_outputs()]
    assert names == list(EXPECTED_OUTPUTS[name])
    for output_name, value in zip(names, outputs):
        assert value.shape == EXPECTED_OUTPUTS[name][output_name]
        assert value.dtype == np.float32
        assert np.isfinite(value).all()
        # Outputs are compared between FP32 and BF16 backends: they must vary and stay moderate.
        assert value.std() > 1e-3
        assert np.abs(value).max() < 1e3


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_same_seed_gives_identical_bytes_and_other_seed_differs(name):
    first = built(name, 0).SerializeToString()
    assert zoo.get(name).build(0).SerializeToString() == first
    assert built(name, 1).SerializeToString() != first


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_parameter_count_matches_the_reference_architecture(name):
    expected = EXPECTED_PARAMETERS[name]
    assert parameter_count(built(name)) == pytest.approx(expected, rel=0.01)


def test_bert_runs_at_other_shapes_and_honours_the_mask():
    sess = session("bert-tiny")
    feeds = random_feeds({n: (2, 7) for n in ("input_ids", "attention_mask", "token_type_ids")}, seed=1)
    feeds["attention_mask"][:, 4:] = 0
    hidden, pooled = sess.run(None, feeds)
    assert hidden.shape == (2, 7, 128) and pooled.shape == (2, 128)

    # Changing masked-out tokens must not change what the unmasked tokens see (up to exp(-10000) = 0).
    feeds["input_ids"][:, 4:] = (feeds["input_ids"][:, 4:] + 1) % BERT_VOCAB
    hidden_changed, pooled_changed = sess.run(None, feeds)
    np.testing.assert_allclose(hidden_changed[:, :4], hidden[:, :4], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pooled_changed, pooled, rtol=0, atol=1e-6)
