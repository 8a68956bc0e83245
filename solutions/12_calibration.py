"""Solutions to the checked exercises of notebook 12 (calibration).

- `draw_per_class(x, y, per_class, seed)`: for each class, `per_class` of its images drawn without
  replacement with `np.random.default_rng(seed)`: a small calibration set that sees every class.
- `percentile_range(values, p)`: cut both tails, low at the (100 − p)-th percentile and high at the
  p-th (p = 100 is min-max).
- `aeq_grid(low, high, bits)`: ai-edge-quantizer's asymmetric grid: stretch the range to include 0,
  scale = (max − min) / (qmax − qmin), zero point = round(qmin − min / scale).

`MISTAKES` holds the typical wrong answers: a draw from the whole split (unbalanced), n images in
all instead of n per class, the first images of each class whatever the seed, test images; a
percentile range whose low end is the minimum, or ±p-th percentile of |x|; a grid that leaves 0 out
of the range, a uint8 zero point, or 256 steps.
"""

import numpy as np

from qlab.training import data


def draw_per_class(x, y, per_class, seed):
    """`per_class` images of every class of `y`, drawn at random (seeded) from `x`."""
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    return x[np.concatenate(picked)]


def percentile_range(values, p):
    """(low, high): the (100 − p)-th and p-th percentiles of the values."""
    return float(np.percentile(values, 100 - p)), float(np.percentile(values, p))


def aeq_grid(low, high, bits):
    """(scale, zero_point) of AEQ's asymmetric signed grid for the range (low, high)."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / (qmax - qmin)
    return scale, int(np.rint(qmin - low / scale))


def _whole_split(x, y, per_class, seed):
    """Wrong: as many images as a balanced draw, but from the whole split (some classes missed)."""
    n = per_class * len(np.unique(y))
    return x[np.random.default_rng(seed).choice(len(x), n, replace=False)]


def _n_in_all(x, y, per_class, seed):
    """Wrong: `per_class` images in all."""
    return x[np.random.default_rng(seed).choice(len(x), per_class, replace=False)]


def _first_of_each(x, y, per_class, seed):
    """Wrong: the first images of each class, the same for every seed."""
    return x[np.concatenate([np.flatnonzero(y == c)[:per_class] for c in np.unique(y)])]


def _test_images(x, y, per_class, seed):
    """Wrong: a balanced draw from the test split (the leak of the article's X_test[:10])."""
    test = data.load()
    return draw_per_class(test.x_test, test.y_test, per_class, seed)


SOLUTIONS = {
    "check_balanced_draw": draw_per_class,
    "check_percentile_range": percentile_range,
    "check_aeq_grid": aeq_grid,
}

MISTAKES = {
    "check_balanced_draw": [_whole_split, _n_in_all, _first_of_each, _test_images],
    "check_percentile_range": [
        lambda v, p: (float(np.min(v)), float(np.percentile(v, p))),  # the low tail left uncut
        lambda v, p: (
            float(np.percentile(v, p)),
            float(np.percentile(v, p)),
        ),  # both ends at the p-th
        lambda v, p: (
            -float(np.percentile(np.abs(v), p)),
            float(np.percentile(np.abs(v), p)),
        ),  # symmetric
    ],
    "check_aeq_grid": [
        lambda lo, hi, bits: (
            (hi - lo) / (2**bits - 1),
            round(-(2 ** (bits - 1)) - lo / ((hi - lo) / (2**bits - 1))),
        ),
        lambda lo, hi, bits: (
            aeq_grid(lo, hi, bits)[:1] + (aeq_grid(lo, hi, bits)[1] + 2 ** (bits - 1),)
        ),  # uint8's
        lambda lo, hi, bits: (
            (max(hi, 0) - min(lo, 0)) / 2**bits,
            round(-(2 ** (bits - 1)) - min(lo, 0) / ((max(hi, 0) - min(lo, 0)) / 2**bits)),
        ),
    ],
}
