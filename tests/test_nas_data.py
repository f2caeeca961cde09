"""The search's data sets: Fashion-MNIST (when Debian's package is installed), scikit-learn's
digits, a user's folder of class folders and .npz file, resizing, the validation split, and the
errors for what is missing."""
from __future__ import annotations

import numpy as np
import pytest

from nas.data import (FASHION_MNIST_DIR, FASHION_MNIST_ENV, FASHION_MNIST_FILES, DataError, Split, load_dataset,
                      resize, split_validation)

HAS_FASHION = all((FASHION_MNIST_DIR / name).is_file() for pair in FASHION_MNIST_FILES.values() for name in pair)


def test_digits_load_with_their_shapes_and_labels():
    data = load_dataset("digits", resolution=16, validation=0.1, seed=0)
    assert data.input_shape == (1, 16, 16) and data.classes == tuple("0123456789")
    assert len(data.train) + len(data.validation) + len(data.test) == 1797
    assert len(data.validation) == 144 and len(data.test) == 359
    assert data.train.images.dtype == np.float32 and 0.0 <= data.train.images.min() and data.train.images.max() <= 1.0
    assert set(np.unique(data.train.labels)) == set(range(10)) and data.train.labels.dtype == np.int64
    assert load_dataset("digits").input_shape == (1, 8, 8)


@pytest.mark.skipif(not HAS_FASHION, reason=f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR} "
                    "(apt-get install dataset-fashion-mnist; scripts/install.sh does)")
def test_fashion_mnist_loads_from_the_debian_package():
    data = load_dataset("fashion-mnist", resolution=20, validation=0.1, seed=1)
    assert data.input_shape == (1, 20, 20) and len(data.classes) == 10
    assert (len(data.train), len(data.validation), len(data.test)) == (54000, 6000, 10000)
    assert list(data.test.labels[:10]) == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]  # the test set's first labels
    assert np.bincount(data.test.labels).tolist() == [1000] * 10


def test_a_missing_fashion_mnist_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


def test_an_npz_file_loads_and_a_malformed_one_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 12, 10, 3), dtype=np.uint8)
    y = np.arange(50) % 5
    np.savez(tmp_path / "mine.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10], classes=np.array(list("abcde")))
    data = load_dataset(tmp_path / "mine.npz", resolution=8, validation=0.2)
    assert data.input_shape == (3, 8, 8) and data.classes == tuple("abcde")
    assert (len(data.train), len(data.validation), len(data.test)) == (40, 10, 10)
    raw = load_dataset(tmp_path / "mine.npz", validation=0.2)
    assert raw.test.images[0, 2, 3, 4] == pytest.approx(x[0, 3, 4, 2] / 255)  # NHWC read as NCHW
    np.savez(tmp_path / "bad.npz", images=x)
    with pytest.raises(DataError, match="lacks x_train, y_train"):
        load_dataset(tmp_path / "bad.npz")


def test_a_folder_of_class_folders_loads_and_a_missing_one_is_refused(tmp_path):
    from PIL import Image

    for name, value in (("cat", 40), ("dog", 200)):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((6, 6), value + i, np.uint8), "L").save(tmp_path / "pets" / name / f"{i}.png")
    data = load_dataset(tmp_path / "pets", resolution=6, validation=0.2, seed=3)
    assert data.classes == ("cat", "dog") and data.input_shape == (1, 6, 6) and data.test is None
    assert len(data.train) == 8 and len(data.validation) == 2
    for images, labels in ((data.train.images, data.train.labels), (data.validation.images, data.validation.labels)):
        assert np.all((images[:, 0, 0, 0] > 0.5) == (labels == 1))  # each image keeps its own label
    with pytest.raises(DataError, match="not one of fashion-mnist, digits"):
        load_dataset(tmp_path / "nothing-here")
    (tmp_path / "pets" / "empty").mkdir()
    with pytest.raises(DataError, match="empty hold no images"):
        load_dataset(tmp_path / "pets")


def test_the_validation_split_is_seeded_and_disjoint():
    split = Split(np.arange(100, dtype=np.float32).reshape(100, 1, 1, 1), np.arange(100))
    kept, held = split_validation(split, 0.1, seed=4)
    again, held_again = split_validation(split, 0.1, seed=4)
    assert len(held) == 10 and len(kept) == 90 and np.array_equal(held.labels, held_again.labels)
    assert not set(held.labels) & set(kept.labels)
    assert not np.array_equal(held.labels, split_validation(split, 0.1, seed=5)[1].labels)
    with pytest.raises(DataError):
        split_validation(split, 1.0)


def test_resize_keeps_the_range_and_count():
    split = Split(np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32), np.zeros(3, np.int64))
    for resolution in (16, 32):
        out = resize(split, resolution)
        assert out.images.shape == (3, 1, resolution, resolution) and 0 <= out.images.min() <= out.images.max() <= 1
