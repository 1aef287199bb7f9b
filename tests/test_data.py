"""Offline datasets: splits, shapes, normalisation, image folders and errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tvm_mcuformer.data import (
    NORM_MEAN,
    NORM_STD,
    dataset_info,
    load_split,
    normalize,
    stratified_split,
)


@pytest.mark.parametrize(
    ("name", "side", "n_train", "n_test"),
    [("digits", 8, 1397, 400), ("mnist5k", 28, 4000, 1000)],
)
def test_builtin_shapes_dtypes_and_range(name, side, n_train, n_test):
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = load_split(name, split)
        assert x.shape == (n, 1, side, side) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64
        assert x.min() == -1.0 and x.max() == 1.0
        assert set(np.unique(y)) == set(range(10))
    info = dataset_info(name)
    assert (info.image_size, info.channels, info.num_classes) == ((side, side), 1, 10)
    assert info.class_names == tuple("0123456789")
    assert (info.n_train, info.n_test) == (n_train, n_test)


def test_mnist5k_split_is_stratified_and_disjoint():
    x_train, y_train = load_split("mnist5k", "train")
    x_test, y_test = load_split("mnist5k", "test")
    assert np.bincount(y_test).tolist() == [100] * 10
    assert np.bincount(y_train).tolist() == [400] * 10
    train_rows = {row.tobytes() for row in x_train.reshape(len(x_train), -1)}
    assert not any(row.tobytes() in train_rows for row in x_test.reshape(len(x_test), -1))


def test_digits_split_is_proportional():
    _, y_test = load_split("digits", "test")
    _, y_train = load_split("digits", "train")
    total = np.bincount(y_test) + np.bincount(y_train)
    assert np.all(np.abs(np.bincount(y_test) - total * 400 / total.sum()) < 1)


def test_splits_are_deterministic_and_seeded():
    a = load_split("digits", "test", seed=0)
    b = load_split("digits", "test", seed=0)
    c = load_split("digits", "test", seed=1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_stratified_split_covers_exactly_once():
    y = np.repeat(np.arange(3), [10, 20, 31])
    train, test = stratified_split(y, 20, seed=5)
    assert len(test) == 20 and len(train) == len(y) - 20
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(y)))
    assert np.bincount(y[test]).tolist() == [3, 7, 10]
    again = stratified_split(y, 20, seed=5)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    with pytest.raises(ValueError, match="n_test"):
        stratified_split(y, 0, seed=0)


def test_normalisation_constants():
    assert normalize(np.array([0, 8, 16]), 16).tolist() == [-1.0, 0.0, 1.0]
    x = normalize(np.array([51.0]), 255.0)
    assert x.dtype == np.float32
    assert x[0] == pytest.approx((51 / 255 - NORM_MEAN) / NORM_STD)


def test_bad_names_and_splits():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*digits, mnist5k"):
        load_split("cifar")
    with pytest.raises(ValueError, match="unknown split 'val'.*train, test"):
        load_split("digits", "val")
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_info("mnist")
    with pytest.raises(ValueError, match="names no folder"):
        load_split("imagefolder:")


def _write_images(root, split, cls, n, size=(6, 4), mode="L", value=0):
    d = root / split / cls
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        Image.fromarray(np.full(shape, value + i, dtype=np.uint8)).save(d / f"{i}.png")


def test_imagefolder_grayscale(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        _write_images(tmp_path, split, "cat", n, value=0)
        _write_images(tmp_path, split, "dog", n, value=256 - n)
    name = f"imagefolder:{tmp_path}"
    info = dataset_info(name)
    assert info.class_names == ("cat", "dog") and info.channels == 1
    assert info.image_size == (4, 6) and (info.n_train, info.n_test) == (6, 4)
    x, y = load_split(name, "train")
    assert x.shape == (6, 1, 4, 6) and x.dtype == np.float32
    assert y.tolist() == [0, 0, 0, 1, 1, 1] and y.dtype == np.int64
    assert x[0].min() == -1.0 and x[-1].max() == 1.0


def test_imagefolder_mixed_modes_load_as_rgb(tmp_path):
    for split in ("train", "test"):
        _write_images(tmp_path, split, "a", 1, mode="L", value=10)
        _write_images(tmp_path, split, "b", 1, mode="RGB", value=20)
    x, y = load_split(f"imagefolder:{tmp_path}", "test")
    assert x.shape == (2, 3, 4, 6) and y.tolist() == [0, 1]
    assert np.allclose(x[0], normalize(np.array(10), 255))


def test_imagefolder_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_split(f"imagefolder:{tmp_path / 'nowhere'}")
    _write_images(tmp_path, "train", "a", 1)
    with pytest.raises(FileNotFoundError, match="missing test/ subfolder"):
        load_split(f"imagefolder:{tmp_path}")
    _write_images(tmp_path, "test", "b", 1)
    with pytest.raises(ValueError, match="differ from test classes"):
        load_split(f"imagefolder:{tmp_path}")
    _write_images(tmp_path, "test", "a", 1)
    _write_images(tmp_path, "train", "b", 1, size=(5, 5))
    with pytest.raises(ValueError, match="images differ in size"):
        load_split(f"imagefolder:{tmp_path}")
    (tmp_path / "train" / "c").mkdir()
    (tmp_path / "test" / "c").mkdir()
    with pytest.raises(ValueError, match="holds no .png"):
        load_split(f"imagefolder:{tmp_path}")
