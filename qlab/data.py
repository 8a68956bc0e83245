"""The digits data exactly as the article splits it, and calibration samples.

Everything comes from scikit-learn's bundled copy of the UCI digits: nothing downloads.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 10
TEST_SIZE = 0.25
SPLIT_SEED = 42  # the article's random_state


@dataclass(frozen=True)
class Digits:
    """The article's split: 1,347 train / 450 test images, raw 0..16 pixels, float32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@functools.lru_cache(maxsize=1)
def load() -> Digits:
    """Load the digits and split them as the article does (test_size=0.25, random_state=42).

    Returns:
        `Digits`: x_train (1347, 8, 8, 1) and x_test (450, 8, 8, 1) float32 pixels in 0..16,
        y_train and y_test int64 labels 0..9. The arrays are read-only (shared between calls).
    """
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits["images"], digits["target"], test_size=TEST_SIZE, random_state=SPLIT_SEED
    )
    arrays = [
        np.expand_dims(x_train, -1).astype(np.float32),
        y_train.astype(np.int64),
        np.expand_dims(x_test, -1).astype(np.float32),
        y_test.astype(np.int64),
    ]
    for a in arrays:
        a.setflags(write=False)  # shared by lru_cache: nobody may change them in place
    return Digits(*arrays)


def calibration(x: np.ndarray | None = None, n: int = 100, seed: int = 0) -> np.ndarray:
    """`n` representative samples drawn (seeded, without replacement) from the training split.

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
