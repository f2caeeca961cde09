"""The firmware's input generator, reproduced on the host.

A firmware without a staging copy of the input (main.c.j2, INPUT_STAGING 0) runs only the first
inference of an `infer` command on the loaded input; before each other one, outside the timed
window, it fills the input slot with these bytes: xorshift32 seeded with the inference's ordinal
in the command (1: the first, warm-ups included), one byte (the state's top byte) per step."""
from __future__ import annotations

import numpy as np

SEED_MULTIPLIER = 0x9E3779B9
MASK32 = 0xFFFFFFFF


def generated_input(ordinal: int, size: int) -> bytes:
    """The `size` bytes the firmware generates for inference `ordinal` of an `infer` command."""
    if ordinal < 1:
        raise ValueError(f"inference ordinal {ordinal}: the first inference of a command is 1")
    state = (SEED_MULTIPLIER * ordinal) & MASK32 or 1
    out = bytearray(size)
    for i in range(size):
        state ^= (state << 13) & MASK32
        state ^= state >> 17
        state ^= (state << 5) & MASK32
        out[i] = state >> 24
    return bytes(out)


def generated_value(ordinal: int, like: np.ndarray) -> np.ndarray:
    """The generated input of inference `ordinal` as an array shaped and typed like `like`."""
    data = generated_input(ordinal, like.nbytes)
    return np.frombuffer(data, dtype=like.dtype).reshape(like.shape).copy()
