"""A user's `.npy` file read safely: its header is checked (a plain array, of the size the caller
expects, with that many bytes behind it) before any memory is taken for its data, so that an
`.npz` archive, an empty or truncated file, or a header that declares a huge shape is refused
with a message that names the file."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from hil.errors import LabError

_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
_ZIP_MAGIC = b"PK\x03\x04"


def user_file(path: Path, what: str) -> Path:
    """`path` when it is a regular file; otherwise a LabError saying what it is instead."""
    if path.is_dir():
        raise LabError(f"{what} {path} is a folder, not a file")
    if not path.exists():
        raise LabError(f"{what} {path} does not exist")
    if not path.is_file():
        raise LabError(f"{what} {path} is not a regular file (a device, a pipe or a socket?)")
    return path


def read_npy(path: Path, elements: int, takes: str, what: str = "input", *, at_most: bool = False) -> np.ndarray:
    """The array in the `.npy` file at `path`, which must hold `elements` values (with `at_most`:
    1 to `elements`; `takes` says what the caller wants, for the message); LabError naming the
    file otherwise."""
    user_file(path, what)
    try:
        with open(path, "rb") as stream:
            if stream.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
                raise LabError(f"{what} {path} is a zip archive (an .npz file?), not a .npy file: save one "
                               "array with numpy.save")
            stream.seek(0)
            shape, fortran_order, dtype = _header(stream, path, what)
            count = math.prod(shape)
            if (not 0 < count <= elements) if at_most else count != elements:
                raise LabError(f"{what} {path} has shape {shape} ({count:,} values); {takes}")
            needed = count * dtype.itemsize
            data = stream.read(needed)
    except OSError as error:
        raise LabError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(data) < needed:
        raise LabError(f"{what} {path} is truncated: its header declares shape {shape} of {dtype} ({needed:,} "
                       f"bytes) but {len(data):,} bytes follow it")
    value = np.frombuffer(data, dtype=dtype, count=count)
    return value.reshape(shape, order="F" if fortran_order else "C").copy()


def _header(stream, path: Path, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The shape, order and dtype of a .npy header, checked to be a plain array of numbers."""
    try:
        version = npy_format.read_magic(stream)
        reader = _HEADER_READERS.get(version)
        if reader is None:
            raise LabError(f"{what} {path}: .npy format version {version[0]}.{version[1]} is not supported "
                           "(save it with numpy.save)")
        shape, fortran_order, dtype = reader(stream)
    except (ValueError, SyntaxError, EOFError) as error:
        if stream.tell() == 0:
            raise LabError(f"{what} {path} is empty, not a .npy file") from None
        raise LabError(f"{what} {path} is not a .npy file: {error}") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise LabError(f"{what} {path} holds {dtype} values; give an array of numbers")
    return tuple(int(n) for n in shape), bool(fortran_order), dtype
