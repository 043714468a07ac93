"""A BERT encoder shaped like google/bert_uncased_L-2_H-128_A-2 (bert-tiny), as a legacy torch export."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from edgecc.zoo._builder import GraphBuilder, value_info

BERT_TINY_DESCRIPTION = "BERT-tiny encoder (2 layers, hidden 128, 2 heads), like google/bert_uncased_L-2_H-128_A-2"

VOCAB = 30522
HIDDEN = 128
LAYERS = 2
HEADS = 2
INTERMEDIATE = 512
MAX_POSITIONS = 512
TYPE_VOCAB = 2
INIT_STD = 0.02  # BERT's initializer_range
HEAD_DIM = HIDDEN // HEADS


def _embeddings(b: GraphBuilder) -> str:
    word = b.normal((VOCAB, HIDDEN), INIT_STD)
    word[0] = 0.0  # padding_idx 0, as HF initialises it
    word = b.weight("embeddings.word_embeddings.weight", word)
    position = b.weight("embeddings.position_embeddings.weight", b.normal((MAX_POSITIONS, HIDDEN), INIT_STD))
    token_type = b.weight("embeddings.token_type_embeddings.weight", b.normal((TYPE_VOCAB, HIDDEN), INIT_STD))
    # HF keeps position ids as a [1, 512] buffer and slices it to the sequence length.
    position_ids = b.weight("embeddings.position_ids", np.arange(MAX_POSITIONS, dtype=np.int64)[None, :])
    sequence = b.op("Shape", ["input_ids"], start=1, end=2)
    position_ids = b.op("Slice", [position_ids, b.constant([0], np.int64), sequence, b.constant([1], np.int64)])
    x = b.add(b.op("Gather", [word, "input_ids"]), b.op("Gather", [token_type, "token_type_ids"]))
    x = b.add(x, b.op("Gather", [position, position_ids]))
    return b.layernorm_decomposed(x, HIDDEN, name="embeddings.LayerNorm")


def _additive_mask(b: GraphBuilder) -> str:
    """attention_mask [batch, seq] -> (1 - mask) * -10000 as [batch, 1, 1, seq]."""
    mask = b.op("Unsqueeze", ["attention_mask", b.constant([1, 2], np.int64)])
    mask = b.op("Cast", [mask], to=TensorProto.FLOAT)
    return b.mul(b.op("Sub", [b.constant(1.0), mask]), b.constant(-10000.0))


def _self_attention(b: GraphBuilder, x: str, mask: str, name: str) -> str:
    def heads(t: str, perm: list[int]) -> str:
        # Reshape's 0 copies batch and sequence from the input, so any batch/sequence works.
        split = b.op("Reshape", [t, b.constant([0, 0, HEADS, HEAD_DIM], np.int64)])
        return b.op("Transpose", [split], perm=perm)

    q = heads(b.linear(x, HIDDEN, HIDDEN, name=f"{name}.query", std=INIT_STD), [0, 2, 1, 3])
    k = heads(b.linear(x, HIDDEN, HIDDEN, name=f"{name}.key", std=INIT_STD), [0, 2, 3, 1])
    v = heads(b.linear(x, HIDDEN, HIDDEN, name=f"{name}.value", std=INIT_STD), [0, 2, 1, 3])
    scores = b.op("Div", [b.matmul(q, k), b.constant(math.sqrt(HEAD_DIM))])
    probs = b.op("Softmax", [b.add(scores, mask)], axis=-1)
    context = b.op("Transpose", [b.matmul(probs, v)], perm=[0, 2, 1, 3])
    return b.op("Reshape", [context, b.constant([0, 0, HIDDEN], np.int64)])


def _encoder_layer(b: GraphBuilder, x: str, mask: str, name: str, output: str | None) -> str:
    attention = _self_attention(b, x, mask, f"{name}.attention.self")
    attention = b.linear(attention, HIDDEN, HIDDEN, name=f"{name}.attention.output.dense", std=INIT_STD)
    x = b.layernorm_decomposed(b.add(attention, x), HIDDEN, name=f"{name}.attention.output.LayerNorm")
    hidden = b.gelu_erf(b.linear(x, HIDDEN, INTERMEDIATE, name=f"{name}.intermediate.dense", std=INIT_STD))
    hidden = b.linear(hidden, INTERMEDIATE, HIDDEN, name=f"{name}.output.dense", std=INIT_STD)
    return b.layernorm_decomposed(b.add(hidden, x), HIDDEN, name=f"{name}.output.LayerNorm", output=output)


def bert_tiny(seed: int = 0) -> onnx.ModelProto:
    """BERT-tiny with seeded random weights.

    Inputs `input_ids`, `attention_mask`, `token_type_ids`: int64 [batch, sequence], sequence <= 512.
    Outputs `last_hidden_state` float32 [batch, sequence, 128] and `pooler_output` [batch, 128].
    """
    b = GraphBuilder(seed)
    x = _embeddings(b)
    mask = _additive_mask(b)
    for i in range(LAYERS):
        last = i == LAYERS - 1
        x = _encoder_layer(b, x, mask, f"encoder.layer.{i}", output="last_hidden_state" if last else None)
    first_token = b.op("Gather", [x, b.constant(0, np.int64)], axis=1)
    pooled = b.gemm(first_token, HIDDEN, HIDDEN, name="pooler.dense", std=INIT_STD)
    b.op("Tanh", [pooled], output="pooler_output")

    int_input = ["batch", "sequence"]
    return b.make_model(
        [value_info(n, TensorProto.INT64, int_input) for n in ("input_ids", "attention_mask", "token_type_ids")],
        [
            value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN]),
            value_info("pooler_output", TensorProto.FLOAT, ["batch", HIDDEN]),
        ],
        name="bert_tiny", doc=BERT_TINY_DESCRIPTION,
    )
