"""Low-rank factorisation (truncated SVD) of Gemm/MatMul weights and 1x1 Conv kernels."""

from .svd import LowRankLayer, LowRankResult, factorize_model

__all__ = ["LowRankLayer", "LowRankResult", "factorize_model"]
