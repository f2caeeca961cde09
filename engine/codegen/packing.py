"""Constants laid out for tl_opt.h's inline blocks: weights packed as int32 words for tl_gemm_2px
and tl_gemv, and int16 pairs as SXTAB16 adds them."""
from __future__ import annotations

import numpy as np

from engine.codegen.literals import c_int


def groups(k: int) -> int:
    """Groups of four values in a vector of k (the last one padded with zeros)."""
    return -(-k // 4)


def int32_words(values: np.ndarray) -> list[int]:
    """int64 values taken modulo 2^32 as signed int32."""
    words = (np.asarray(values, dtype=np.int64).ravel() + (1 << 31)) % (1 << 32) - (1 << 31)
    return [int(v) for v in words]


def pack_gemm(weights: np.ndarray, block: int, wide: bool) -> list[int]:
    """Weights [rows][k] (int8 values, or int16 ones when wide) as int32 words for tl_gemm_2px
    (block 2) or tl_gemv (block TL_MV_ROWS): blocks of `block` rows, each k4 groups of `block` rows
    of one group (int16 pairs (k0,k2),(k1,k3) when wide, else the four bytes as one word), then
    the rows left over one by one. k is padded with zeros to a multiple of 4."""
    rows, k = weights.shape
    k4 = groups(k)
    padded = np.zeros((rows, 4 * k4), dtype=np.int64)
    padded[:, :k] = weights
    g = padded.reshape(rows, k4, 4)
    if wide:
        units = np.stack([(g[..., 0] & 0xFFFF) | (g[..., 2] << 16), (g[..., 1] & 0xFFFF) | (g[..., 3] << 16)], axis=-1)
    else:
        units = ((g[..., 0] & 0xFF) | ((g[..., 1] & 0xFF) << 8) | ((g[..., 2] & 0xFF) << 16) | (g[..., 3] << 24))[..., None]
    full = rows // block * block
    lanes = units.shape[-1]
    parts = [units[:full].reshape(full // block, block, k4, lanes).transpose(0, 2, 1, 3).ravel(), units[full:].ravel()]
    return int32_words(np.concatenate(parts))


def pair_literal(value: int) -> str:
    """Two int16 lanes holding `value`, as an int32 literal (SXTAB16's addend)."""
    return c_int(int32_words(np.array([(value & 0xFFFF) | (value << 16)]))[0])
