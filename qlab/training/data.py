"""Data sets split for training and testing, and calibration (representative) samples.

The built-in sets come from scikit-learn's bundled copies: nothing downloads.

- `digits`: the article's split of the UCI digits (test_size=0.25, random_state=42): 1,347 train
  and 450 test images, 8x8x1, raw 0..16 pixels.
- `digits_rows`: the same images as sequences of 8 time steps (the rows) of 8 features, scaled
  to 0..1, for recurrent models.
- `wine`: the UCI wine recipes (13 features, 3 cultivars), split the same way (133 / 45) and
  standardized with the training split's mean and standard deviation.

Any other data goes through `dataset(...)`, which checks it.
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
    """A classification data set split in two: x_train (n, ...) float32, y_train (n,) int64
    labels 0..classes-1, x_test and y_test alike, and a name. Arrays are read-only."""

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
            f"Dataset({self.name!r}: {len(self.x_train)} train / {len(self.x_test)} test, samples "
            f"{self.sample_shape}, {self.num_classes} classes)"
        )


Digits = Dataset  # the name the digits notebooks use


def dataset(x_train, y_train, x_test, y_test, name: str = "custom") -> Dataset:
    """Your own data, checked: float samples of one shape, integer labels 0..classes-1.

    Returns:
        a `Dataset` holding float32 read-only copies of the samples and int64 labels.

    Raises:
        ValueError: empty splits, samples and labels of different lengths, train and test samples
            of different shapes, non-numeric or non-finite samples, or labels that are not whole
            numbers from 0 (one-hot labels: pass `labels.argmax(axis=1)`).
    """
    arrays = []
    for split, (x, y) in {"train": (x_train, y_train), "test": (x_test, y_test)}.items():
        x, y = np.asarray(x), np.asarray(y)
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(
                f"the {split} split has {len(x)} samples and {len(y)} labels; pass as many "
                "labels as samples, at least one"
            )
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
            raise ValueError(f"the {split} samples must be finite numbers")
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
    """A built-in data set, split as described in the module docstring.

    Returns:
        the `Dataset`; for the digits, x_train (1347, 8, 8, 1) and x_test (450, 8, 8, 1) float32
        pixels 0..16, y_train and y_test int64 labels 0..9. Arrays are shared between calls.

    Raises:
        ValueError: an unknown name (the message lists the built-in ones).
    """
    if name not in BUILT_IN:
        raise ValueError(
            f"unknown data set {name!r}; built in: {', '.join(BUILT_IN)}; for your own "
            "arrays use qlab.training.data.dataset(x_train, y_train, x_test, y_test)"
        )
    return _stored(name)


SPLITS = ("x_train", "y_train", "x_test", "y_test")


def _stored(name: str) -> Dataset:
    """The built-in set `name` from qlab's cache, where an earlier run stored its arrays (reading
    them takes milliseconds; importing scikit-learn to rebuild them, half a second in every process),
    else built and stored; a damaged entry is rebuilt, and a cache that cannot be written is skipped."""

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
    """`n` representative samples drawn (seeded, without replacement) from a training split.

    Args:
        x: the pool to draw from (default: the digits' training images).
        n: how many samples.
        seed: which samples; the same seed draws the same ones, in the pool's order.

    Returns:
        float32 array (n,) + the pool's sample shape, a copy.

    Raises:
        ValueError: n not a whole number, below 1 or above the pool size.
    """
    if x is None:
        x = load().x_train
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"calibration size n must be a whole number, got {n!r}")
    if not 1 <= n <= len(x):
        raise ValueError(f"calibration size n={n} must be between 1 and {len(x)} (the pool size)")
    order = np.random.default_rng(seed).permutation(len(x))[:n]
    return np.ascontiguousarray(x[np.sort(order)], dtype=np.float32)


def fingerprint(*arrays: np.ndarray) -> str:
    """A short content hash of arrays (shape, dtype and bytes), used in cache keys.

    Returns:
        the first 16 hex digits of the SHA-256 of every array's shape, dtype and bytes.
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
