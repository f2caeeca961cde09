"""The requantisation modes of tl_opt.h's tl_out8 (TL_RQ_*): how the optimised kernels rescale an
int32 sum to int8, the cheapest mode exact for every channel chosen per layer, and the per-channel
constants each mode reads."""
from __future__ import annotations

from typing import Sequence

import numpy as np

# Requantisation modes of tl_opt.h's tl_out8 (TL_RQ_*), cheapest last.
RQ_PORTABLE, RQ_ANY, RQ_EVEN, RQ_EVEN_ZP = 0, 1, 2, 3
RQ_SIGNED = 4  # a flag beside the mode: some multiplier is negative (TL_RQ_SIGNED)
RQ_BASE = 3  # the mode without its flag
EVEN_ZP_MAX_SHIFT = 23  # with zp folded into the rounding constant, hi stays within 32 bits
RQ_CHOICES = ("rq-portable", "rq-any", "rq-even", "rq-even-zp")  # variant choices, by mode
RQ_SIGNED_CHOICE = "rq-signed"
RQ_SPLIT_CHOICE = "rq-per-channel"  # the channels of one layer in two modes (see split_modes)


def requant_mode(mults: Sequence[int], shifts: Sequence[int]) -> int:
    """The cheapest tl_out8 mode that is exact for every channel (right shifts e = -shift). The
    fast modes round by the product's sign: where a channel's multiplier is negative (a negative
    weight scale, as in MCUNet's F746 model) they carry RQ_SIGNED, which reads that sign from
    acc ^ (m >> 31). The multiplier -2^31 (TFLite's saturating case) takes the portable mode."""
    if any(m <= -(2**31) for m in mults):
        return RQ_PORTABLE
    signed = RQ_SIGNED if any(m < 0 for m in mults) else 0
    shifts_used = [-s for m, s in zip(mults, shifts) if m != 0]
    if all(e >= 3 for e in shifts_used):
        return (RQ_EVEN_ZP if all(e <= EVEN_ZP_MAX_SHIFT for e in shifts_used) else RQ_EVEN) | signed
    if all(e >= 1 for e in shifts_used):
        return RQ_ANY | signed
    return RQ_PORTABLE


def split_modes(mults: Sequence[int], shifts: Sequence[int]) -> tuple[int, int, tuple[bool, ...]] | None:
    """Where a layer's common mode is one of the slow ones (RQ_PORTABLE, RQ_ANY) only because of some
    of its channels, as in a trained network whose few dead channels fold into large weight scales:
    (the mode of the channels that allow an RQ_EVEN mode, the mode of the others, which channels are
    the fast ones). None where one mode serves the layer as well."""
    if requant_mode(mults, shifts) & RQ_BASE >= RQ_EVEN:
        return None
    fast = tuple(requant_mode([m], [s]) & RQ_BASE >= RQ_EVEN for m, s in zip(mults, shifts))
    if not any(fast):
        return None

    def mode_of(group: bool) -> int:
        chosen = [(m, s) for (m, s), f in zip(zip(mults, shifts), fast) if f == group]
        return requant_mode([m for m, _ in chosen], [s for _, s in chosen])

    return mode_of(True), mode_of(False), fast


def rq_tags(mode: int) -> tuple[str, ...]:
    """A requantisation mode's variant choices: the mode, and whether it reads a negative multiplier's sign."""
    return (RQ_CHOICES[mode & RQ_BASE], RQ_SIGNED_CHOICE if mode & RQ_SIGNED else "")


def rq_params(m: int, shift: int, mode: int, zp: int) -> tuple[int, int]:
    """(h, sh) of one channel for tl_out8 in `mode` (see tl_opt.h); a zero multiplier gives 0."""
    mode &= RQ_BASE
    if mode == RQ_PORTABLE:
        return 0, shift
    e = -shift if m != 0 else 3
    h = 0
    if mode in (RQ_EVEN, RQ_EVEN_ZP):
        h = 1 << (e - 2)
        if mode == RQ_EVEN_ZP:
            h += zp << (e - 1)
    return h, e - 1


def rq_rows(bias: np.ndarray, mults: Sequence[int], shifts: Sequence[int], zp: int, with_h: bool = True) -> tuple[list[int], int]:
    """Per channel {bias, multiplier, h, sh} ({bias, multiplier, sh} without h), flattened; and the mode."""
    mode = requant_mode(mults, shifts)
    rows = []
    for b, m, s in zip(bias, mults, shifts):
        h, sh = rq_params(int(m), int(s), mode, zp)
        rows += [int(b), int(m), h, sh] if with_h else [int(b), int(m), sh]
    return rows, mode


def split_rows(bias: np.ndarray, mults: Sequence[int], shifts: Sequence[int], zp: int,
               split: tuple[int, int, tuple[bool, ...]]) -> list[int]:
    """Per channel {bias, multiplier, sh, 1 if in the fast group}, flattened, each channel's sh for
    its group's mode (split: from split_modes)."""
    fast_mode, slow_mode, fast = split
    rows = []
    for b, m, s, f in zip(bias, mults, shifts, fast):
        _, sh = rq_params(int(m), int(s), fast_mode if f else slow_mode, zp)
        rows += [int(b), int(m), sh, int(f)]
    return rows
