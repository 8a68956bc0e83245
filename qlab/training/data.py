"""Data sets split for training and testing, and calibration (representative) samples.

Built in, from scikit-learn's bundled copies (nothing downloads):
- `digits`: the article's split of the UCI digits (test_size=0.25, random_state=42): 1,347 train
  and 450 test images, 8x8x1, raw 0..16 pixels.
- `digits_rows`: the same images as 8 time steps (rows) of 8 features, 0..1, for recurrent models.
- `wine`: 13 features, 3 cultivars, split the same way (133 / 45), standardized on the train split.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
import zipfile
from dataclasses import dataclass

import numpy as np

from qlab.infra import cache

IMAGE_SHAPE = (8, 8, 1)  # the digits' sample shape
NUM_CLASSES = 10  # the digits' classes
TEST_SIZE = 0.25
SPLIT_SEED = 42  # the article's random_state


@dataclass(frozen=True)
class Dataset:
    """A classification data set: x_train (n, ...) float32, y_train (n,) int64 labels, x_test and
    y_test alike, and a name. Arrays are read-only."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str = "digits"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample, e.g. (8, 8, 1) for the digits."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """How many classes the labels name (the largest label + 1)."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {len(self.x_train)} train / {len(self.x_test)} test, "
            f"samples {self.sample_shape}, {self.num_classes} classes)"
        )


Digits = Dataset  # the name the digits notebooks use


def dataset(x_train, y_train, x_test, y_test, name: str = "custom") -> Dataset:
    """Returns your own data, checked, as a `Dataset` of read-only float32 samples, int64 labels.

    Raises ValueError for empty splits, samples and labels of different lengths, train and test
    samples of different shapes, non-finite samples, or labels not whole numbers from 0.
    """
    arrays = []
    for split, (x, y) in {"train": (x_train, y_train), "test": (x_test, y_test)}.items():
        x, y = np.asarray(x), np.asarray(y)
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(
                f"the {split} split has {len(x)} samples and {len(y)} labels; pass as many "
                "labels as samples, at least one"
            )
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise ValueError(f"the {split} samples must be real numbers, got {x.dtype}")
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(x.astype(np.float32))):
                raise ValueError(f"the {split} samples must be finite numbers in float32")
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise ValueError(
                f"the {split} labels must be whole numbers from 0, got {y.dtype}; for class "
                "names pass the codes of np.unique(labels, return_inverse=True)[1]"
            )
        if y.ndim != 1 or not np.all(np.mod(y, 1) == 0) or y.min() < 0:
            raise ValueError(
                f"the {split} labels must be one whole number per sample, from 0 "
                f"(got shape {y.shape}); for one-hot labels pass labels.argmax(axis=1)"
            )
        arrays += [x.astype(np.float32), y.astype(np.int64)]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise ValueError(
            f"train samples have shape {arrays[0].shape[1:]}, test samples {arrays[2].shape[1:]}"
        )
    for a in arrays:
        a.setflags(write=False)
    return Dataset(*arrays, name=name)


def _split(x, y, name: str) -> Dataset:
    from sklearn.model_selection import train_test_split  # scikit-learn loads only to build a set

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SPLIT_SEED
    )
    return dataset(x_train, y_train, x_test, y_test, name)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _split(np.expand_dims(digits["images"], -1), digits["target"], "digits")


def _digits_rows() -> Dataset:
    d = load()
    return dataset(
        d.x_train[..., 0] / 16, d.y_train, d.x_test[..., 0] / 16, d.y_test, "digits_rows"
    )


def _wine() -> Dataset:
    from sklearn.datasets import load_wine

    wine = load_wine()
    split = _split(wine["data"], wine["target"], "wine")
    mean, std = split.x_train.mean(axis=0), split.x_train.std(axis=0)
    return dataset(
        (split.x_train - mean) / std,
        split.y_train,
        (split.x_test - mean) / std,
        split.y_test,
        "wine",
    )


BUILT_IN = {"digits": _digits, "digits_rows": _digits_rows, "wine": _wine}


@functools.cache
def load(name: str = "digits") -> Dataset:
    """Returns a built-in `Dataset`, split 75/25 with the article's seed: "digits" (scikit-learn's
    8×8 digits, (8, 8, 1) float32 pixels 0..16, 10 classes), "digits_rows" (the same as 8 time
    steps of 8 features, 0..1, for recurrent models) or "wine" (13 standardized features, 3
    classes). Nothing downloads; arrays are
    shared between calls.

    Raises ValueError, listing the built-in names, for an unknown one.
    """
    if name not in BUILT_IN:
        raise ValueError(
            f"unknown data set {name!r}; built in: {', '.join(BUILT_IN)}; for your own "
            "arrays use qlab.dataset(x_train, y_train, x_test, y_test)"
        )
    return _stored(name)


SPLITS = ("x_train", "y_train", "x_test", "y_test")


def _stored(name: str) -> Dataset:
    """The built-in set from qlab's cache (milliseconds, against half a second to import
    scikit-learn), else built and stored; a cache that cannot be written is skipped."""

    def dump(d: Dataset) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **{split: getattr(d, split) for split in SPLITS})
        return buffer.getvalue()

    def load_arrays(payload: bytes) -> Dataset:
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
                return dataset(*(arrays[split] for split in SPLITS), name=name)
        except zipfile.BadZipFile as error:
            raise ValueError(str(error)) from None

    config = {
        "name": name,
        "scikit-learn": importlib.metadata.version("scikit-learn"),
        "test_size": TEST_SIZE,
        "split_seed": SPLIT_SEED,
    }
    try:
        return cache.cached("dataset", config, BUILT_IN[name], dump, load_arrays)
    except OSError:  # a read-only cache: build the set each time, as before there was a cache
        return BUILT_IN[name]()


def calibration(x: np.ndarray | None = None, n: int = 100, seed: int = 0) -> np.ndarray:
    """Returns `n` samples of `x` (default: the digits' training images) drawn with `seed`,
    without replacement, in pool order: a float32 copy. Raises ValueError for n not a whole
    number from 1 to the pool size; TypeError for a data set instead of its samples."""
    if x is None:
        x = load().x_train
    if hasattr(x, "x_train"):
        raise TypeError("draw from an array of samples, not a data set: pass dataset.x_train")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"calibration size n must be a whole number, got {n!r}")
    if not 1 <= n <= len(x):
        raise ValueError(f"calibration size n={n} must be between 1 and {len(x)} (the pool size)")
    order = np.random.default_rng(seed).permutation(len(x))[:n]
    return np.ascontiguousarray(x[np.sort(order)], dtype=np.float32)


def fingerprint(*arrays: np.ndarray) -> str:
    """Returns 16 hex digits of the SHA-256 of every array's shape, dtype and bytes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
