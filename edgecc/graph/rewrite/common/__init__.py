"""Fusion rules every backend benefits from, one fusion per module, in the order they are applied.

Each module exports ``rules`` (a list of onnxscript RewriteRule). Rules that exist in onnxscript and
check what they must are re-exported; edgecc's own rules are where onnxscript falls short.
"""

from __future__ import annotations

from . import (
    concat_single, conv_batchnorm, conv_scale_bias, gelu, hardswish, layer_norm, matmul_add_gemm, no_op, pad_conv,
    shape_chains, slice_noop, transpose_as_reshape,
)

MODULES = (
    no_op, transpose_as_reshape, shape_chains, concat_single, slice_noop, pad_conv, conv_batchnorm, conv_scale_bias, matmul_add_gemm,
    layer_norm, gelu, hardswish,
)


def rules() -> list:
    return [r for m in MODULES for r in m.rules]
