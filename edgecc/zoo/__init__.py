"""Seeded builders of standard models written directly in ONNX (no torch, nothing downloaded).

Each entry builds an opset-17 model with random but numerically healthy weights, so that
backends can be compared on real architectures without shipping weight files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx

from edgecc.errors import UnknownNameError, suggest
from edgecc.zoo.bert import BERT_TINY_DESCRIPTION, bert_tiny
from edgecc.zoo.mobilenet import MOBILENETV2_DESCRIPTION, mobilenetv2
from edgecc.zoo.resnet import RESNET18_DESCRIPTION, RESNET50_DESCRIPTION, resnet18, resnet50
from edgecc.zoo.tinycnn import TINYCNN_DESCRIPTION, tinycnn

__all__ = ["ZOO", "ZooEntry", "get", "names"]


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: how to build it (`build(seed)`) and the static shapes to use by default."""

    name: str
    description: str
    task: str
    build: Callable[[int], onnx.ModelProto]
    # Static shape for each input with symbolic dims, used when the user gives none.
    default_shapes: dict[str, tuple[int, ...]]


_IMAGENET_SHAPES = {"input": (1, 3, 224, 224)}
_BERT_SHAPES = {name: (1, 128) for name in ("input_ids", "attention_mask", "token_type_ids")}

ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry("bert-tiny", BERT_TINY_DESCRIPTION, "text-encoder", bert_tiny, _BERT_SHAPES),
        ZooEntry("mobilenetv2", MOBILENETV2_DESCRIPTION, "image-classification", mobilenetv2, dict(_IMAGENET_SHAPES)),
        ZooEntry("resnet18", RESNET18_DESCRIPTION, "image-classification", resnet18, dict(_IMAGENET_SHAPES)),
        ZooEntry("resnet50", RESNET50_DESCRIPTION, "image-classification", resnet50, dict(_IMAGENET_SHAPES)),
        ZooEntry("tinycnn", TINYCNN_DESCRIPTION, "image-classification", tinycnn, {"input": (1, 3, 32, 32)}),
    )
}


def names() -> list[str]:
    """The zoo's model names, sorted."""
    return sorted(ZOO)


def get(name: str) -> ZooEntry:
    """The entry called `name`; raises UnknownNameError, suggesting the closest name, if there is none."""
    try:
        return ZOO[name]
    except KeyError:
        known = names()
        raise UnknownNameError(f"unknown zoo model {name!r}{suggest(name, known)}; known: {', '.join(known)}") from None
