"""The search's data sets, offline: Fashion-MNIST from Debian's `dataset-fashion-mnist`,
scikit-learn's bundled 8x8 digits (for fast tests), and a user's own images, as a folder with one
sub-folder of images per class or as an `.npz` file.

Every data set comes as float32 NCHW images in [0, 1] with int64 labels, resized to the search's
resolution R (`resize`), with a validation split carved out of the training set by a seeded draw
(`split_validation`): the test set is never part of the search.

An `.npz` file holds `x_train` (N×H×W grey, or N×H×W×C, channels last) and `y_train` (N class
indices from 0), optionally `x_test` and `y_test` the same way, and `classes` (the class names);
uint8 images are read as 0..255, float ones as already in [0, 1]."""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hil.errors import LabError

FASHION_MNIST_ENV = "TINYLAB_FASHION_MNIST"  # a folder with the four IDX .gz files, instead of Debian's
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
NAMED = ("fashion-mnist", "digits")
DEFAULT_VALIDATION = 0.1  # the share of the training set kept apart for validation


class DataError(LabError):
    """A data set that is missing, or a user's data that cannot be read."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # float32 [N, C, H, W] in [0, 1]
    labels: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[str, ...]
    train: Split
    validation: Split
    test: Split | None  # None: the data set has no test split (a user's own data may not)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images."""
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]


def load_dataset(name: str | Path, resolution: int | None = None, validation: float = DEFAULT_VALIDATION,
                 seed: int = 0) -> Dataset:
    """`fashion-mnist`, `digits`, a folder of class folders or an `.npz` file; resized to
    `resolution` (None: as they are), `validation` of the training set kept apart (seeded)."""
    text = str(name)
    if text == "fashion-mnist":
        classes, train, test = fashion_mnist()
    elif text == "digits":
        classes, train, test = digits()
    else:
        path = Path(text)
        if path.suffix.lower() == ".npz":
            classes, train, test = npz_dataset(path)
        elif path.is_dir():
            classes, train, test = folder_dataset(path)
        else:
            raise DataError(f"data set {text!r}: not one of {', '.join(NAMED)}, and no folder or .npz file of that "
                            f"name exists")
    train, held = split_validation(train, validation, seed)
    if resolution is not None:
        train, held = resize(train, resolution), resize(held, resolution)
        test = resize(test, resolution) if test is not None else None
    return Dataset(text, classes, train, held, test)


# --- the named data sets -------------------------------------------------------------------------


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)


def fashion_mnist(folder: Path | None = None) -> tuple[tuple[str, ...], Split, Split]:
    """Fashion-MNIST's 60,000 training and 10,000 test images (28×28, grey)."""
    folder = folder or fashion_mnist_dir()
    missing = [name for pair in FASHION_MNIST_FILES.values() for name in pair if not (folder / name).is_file()]
    if missing:
        raise DataError(f"Fashion-MNIST is not installed: {folder} lacks {', '.join(missing)}. Install Debian's "
                        f"package (sudo apt-get install dataset-fashion-mnist; scripts/install.sh does), or set "
                        f"{FASHION_MNIST_ENV} to a folder holding the four IDX .gz files")
    splits = []
    for images, labels in FASHION_MNIST_FILES.values():
        x = read_idx(folder / images)
        splits.append(Split((x[:, None] / np.float32(255)).astype(np.float32), read_idx(folder / labels).astype(np.int64)))
    return FASHION_MNIST_CLASSES, splits[0], splits[1]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) of unsigned bytes: its array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0:2] != b"\0\0" or data[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: holds {body.size} bytes for a shape of {shape}")
    return body.reshape(shape)


DIGITS_TEST_SHARE = 0.2  # scikit-learn's digits have no test split: the last fifth, as bundled


def digits() -> tuple[tuple[str, ...], Split, Split]:
    """scikit-learn's 1,797 bundled 8×8 digits (values 0..16), the last fifth as the test split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits data set needs scikit-learn, a dependency of tinylab: "
                        "pip install scikit-learn (or pip install -e . in the checkout)") from None
    bunch = load_digits()
    images = (bunch.images[:, None] / np.float32(16)).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    cut = int(round(len(labels) * (1 - DIGITS_TEST_SHARE)))
    return tuple(str(i) for i in range(10)), Split(images[:cut], labels[:cut]), Split(images[cut:], labels[cut:])


# --- a user's own data ---------------------------------------------------------------------------


def npz_dataset(path: Path) -> tuple[tuple[str, ...], Split, Split | None]:
    """`x_train`, `y_train`, optionally `x_test`, `y_test` and `classes` (see the module's docstring)."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"data file {path}: not a readable .npz file ({error})") from None
    with data:
        keys = set(data.files)
        missing = [k for k in ("x_train", "y_train") if k not in keys]
        if missing:
            raise DataError(f"data file {path}: lacks {', '.join(missing)} (it holds {', '.join(sorted(keys)) or 'nothing'}); "
                            f"expected x_train, y_train, optionally x_test, y_test and classes")
        train = _npz_split(path, data["x_train"], data["y_train"], "train")
        test = (_npz_split(path, data["x_test"], data["y_test"], "test")
                if "x_test" in keys and "y_test" in keys else None)
        count = int(max(train.labels.max(), test.labels.max() if test is not None else 0)) + 1
        classes = tuple(str(c) for c in data["classes"]) if "classes" in keys else tuple(str(i) for i in range(count))
    if len(classes) < count:
        raise DataError(f"data file {path}: labels reach {count - 1} but 'classes' names {len(classes)}")
    return classes, train, test


def _npz_split(path: Path, x: np.ndarray, y: np.ndarray, name: str) -> Split:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = np.transpose(x, (0, 3, 1, 2))
    else:
        raise DataError(f"data file {path}: x_{name} has shape {x.shape}; expected N×H×W or N×H×W×C")
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x) or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DataError(f"data file {path}: y_{name} must hold {len(x)} class indices from 0, not {y.shape} {y.dtype}")
    images = x / np.float32(255) if x.dtype == np.uint8 else x
    return Split(np.ascontiguousarray(images, dtype=np.float32), y.astype(np.int64))


def folder_dataset(path: Path) -> tuple[tuple[str, ...], Split, None]:
    """One sub-folder of images per class (its name the class name, in sorted order). Grey unless
    an image has colour; every image resized to the first one's size. No test split."""
    from PIL import Image

    classes = tuple(sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise DataError(f"data folder {path}: holds no class folders (one sub-folder of images per class)")
    files = [(label, f) for label, name in enumerate(classes) for f in sorted((path / name).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    empty = [name for label, name in enumerate(classes) if not any(lab == label for lab, _ in files)]
    if empty:
        raise DataError(f"data folder {path}: class folder(s) {', '.join(empty)} hold no images "
                        f"({', '.join(IMAGE_SUFFIXES)})")
    try:
        opened = [Image.open(f) for _, f in files]
        mode = "L" if all(im.mode in ("1", "L", "I", "I;16", "F") for im in opened) else "RGB"
        size = opened[0].size
        arrays = [np.asarray(im.convert(mode).resize(size), dtype=np.float32) / 255 for im in opened]
    except OSError as error:
        raise DataError(f"data folder {path}: an image cannot be read ({error})") from None
    images = np.stack(arrays)
    images = images[:, None] if mode == "L" else np.transpose(images, (0, 3, 1, 2))
    return classes, Split(np.ascontiguousarray(images), np.array([label for label, _ in files], np.int64)), None


# --- splits and sizes ----------------------------------------------------------------------------


def split_validation(train: Split, validation: float, seed: int = 0) -> tuple[Split, Split]:
    """(training less validation, validation): a seeded random `validation` share of `train`."""
    if not 0.0 < validation < 1.0:
        raise DataError(f"the validation share is a fraction between 0 and 1, not {validation}")
    count = max(1, int(round(len(train) * validation)))
    if count >= len(train):
        raise DataError(f"a training set of {len(train)} images is too small to keep {count} apart for validation")
    order = np.random.default_rng(seed).permutation(len(train))
    held, kept = np.sort(order[:count]), np.sort(order[count:])
    return Split(train.images[kept], train.labels[kept]), Split(train.images[held], train.labels[held])


def resize(split: Split, resolution: int) -> Split:
    """The images resized to resolution × resolution (bilinear, antialiased when shrinking)."""
    import torch
    import torch.nn.functional as F

    if resolution < 1:
        raise DataError(f"resolution must be at least 1 pixel, not {resolution}")
    if split.images.shape[2:] == (resolution, resolution) or not len(split):
        return split
    shrinking = resolution < max(split.images.shape[2:])
    resized = F.interpolate(torch.from_numpy(split.images), size=(resolution, resolution), mode="bilinear",
                            align_corners=False, antialias=shrinking)
    return replace(split, images=resized.clamp_(0.0, 1.0).numpy())
