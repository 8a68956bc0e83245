"""Calibration range methods: which real range (low, high) to fit an activation's grid to, chosen
from the values the tensor took over a calibration set.

- `minmax`: the smallest and largest value seen (the TFLite converter's and AEQ's rule).
- `percentile`: cut the tails at the (100 − p)-th and p-th percentiles.
- `mse`: the range whose int round trip has the smallest mean squared error.
- `entropy`: TensorRT's KL-divergence threshold.

A method returns two Python floats and need not contain 0: an asymmetric grid stretches the range
to include 0 (`aeq_grid`, AEQ's rule). Settings name a method as a string (`parse`, `choose`):
"minmax", "percentile_99.9", "mse", "entropy", ... Every function taking values raises ValueError
for empty, non-numeric or non-finite values (saying which)."""

from __future__ import annotations

import numpy as np

from qlab.analysis import grid, rounding

METHODS = ("minmax", "percentile", "mse", "entropy")
FORMS = (
    "minmax",
    "percentile_99.9",
    "percentile_99.99",
    "mse",
    "entropy",
)  # percentile_<p>: 50 < p <= 100
MSE_FRACTIONS = np.round(np.arange(100, 4, -1) / 100, 2)
"""The candidates of `mse`: 1.00, 0.99, ..., 0.05 of the min-max range, widest first."""
AEQ_MIN_BOUND = 1e-9  # AEQ's floor on the width of a range ("Avoid zero scale")
KEYS = (
    "rounding_mse",
    "clipping_mse",
    "total_mse",
    "clipped_fraction",
)  # what `split` takes from rounding


def _values(x) -> np.ndarray:
    """`x` flattened to float64, refused if empty, not numeric or not finite."""
    x = np.asarray(x)
    if x.size == 0:
        raise ValueError(
            f"the values are empty (shape {x.shape}): pass what the tensor took over "
            "the calibration set"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"the values must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64).ravel()
    nan, inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
    if nan or inf:
        raise ValueError(
            f"the values contain {nan} NaN and {inf} infinite of {x.size}: a range "
            "needs finite values; find where the float model overflows first"
        )
    return x


def check_percentile(p) -> float:
    """Returns a percentile for `percentile` as a Python float; raises ValueError for a bool, a
    non-number, NaN, or a number outside (50, 100]."""
    hint = "percentile must be in (50, 100], e.g. 99.9 or 99.99"
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise ValueError(f"{hint}; got {p!r}, not a number")
    if not 50 < float(p) <= 100:  # NaN fails this too
        raise ValueError(f"{hint}; got {p!r}")
    return float(p)


def parse(setting) -> tuple[str, float | None]:
    """Returns (method, argument) for a range setting: "minmax", "mse", "entropy" with None, or
    "percentile_<p>" as ("percentile", p). Raises ValueError for anything else (listing the valid
    forms), or a percentile `check_percentile` refuses."""
    forms = ", ".join(repr(f) for f in FORMS)
    if isinstance(setting, str) and setting in ("minmax", "mse", "entropy"):
        return setting, None
    if isinstance(setting, str) and setting.startswith("percentile_"):
        text = setting.removeprefix("percentile_")
        try:
            p = float(text)
        except ValueError:
            raise ValueError(
                f"{setting!r}: {text!r} is not a number; valid settings are {forms}"
            ) from None
        return "percentile", check_percentile(p)
    raise ValueError(
        f"unknown range setting {setting!r}; valid ones are {forms} "
        "(percentile_<p> for any p in (50, 100])"
    )


def minmax(x) -> tuple[float, float]:
    """Returns the converter's range (low, high): the smallest and largest value seen."""
    x = _values(x)
    return float(x.min()), float(x.max())


def percentile(x, p: float) -> tuple[float, float]:
    """Returns (low, high): the (100 − p)-th and p-th percentiles (numpy's linear interpolation);
    a one-sided tensor (ReLU output) gets low = 0 by itself. Raises ValueError for a `p`
    `check_percentile` refuses."""
    p = check_percentile(p)
    low, high = np.percentile(_values(x), [100 - p, p])
    return float(low), float(high)


def mse(x, bits: int = 8) -> tuple[float, float]:
    """Returns the range f·(min, max), f in `MSE_FRACTIONS`, whose quantize–dequantize round trip
    has the smallest mean squared error; ties keep the wider range.

    Each candidate is put on the grid the runtime would build (`aeq_grid`), values rounded and
    clipped: x − s·clip(rint(x/s), qmin − z, qmax − z), which is `qlab.arith`'s round trip but
    for exact halves (rint rounds them to even). Raises ValueError for bits outside 2..16."""
    bits = grid.check_bits(bits)
    x = _values(x)
    lo, hi = x.min(), x.max()
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    scales, zero_points = _aeq(MSE_FRACTIONS * lo, MSE_FRACTIONS * hi, bits)
    best, best_error = 0, np.inf
    steps, levels = np.empty_like(x), np.empty_like(x)
    for i, (s, z) in enumerate(zip(scales.astype(np.float64), zero_points)):
        np.divide(x, s, out=steps)  # x in steps of this candidate's grid
        np.clip(np.rint(steps, out=levels), qmin - z, qmax - z, out=levels)  # its level, less z
        error = np.subtract(levels, steps, out=levels)  # in steps
        # not np.dot: its BLAS threads stall on a busy machine (20x slower seen)
        total = float(np.square(error, out=error).sum()) * s * s
        if total < best_error:
            best, best_error = i, total
    return float(MSE_FRACTIONS[best] * lo), float(MSE_FRACTIONS[best] * hi)


def entropy(x, bits: int = 8, bins: int = 2048) -> tuple[float, float]:
    """TensorRT's entropy calibration: the threshold t whose clipped, `levels`-bin histogram loses
    the least information, KL(P‖Q), against the `bins`-bin histogram of the values.

    Rule: Szymon Migacz, "8-bit Inference with TensorRT", GTC 2017 (S7310), as coded by MXNet
    (`_get_optimal_threshold`, python/mxnet/contrib/quantization.py) and TVM
    (python/tvm/relay/quantize/kl_divergence.py). Histogram of |x| (of x if all ≥ 0) over [0, max].
    For each i from `levels` to `bins`: P = hist[:i] with the outliers hist[i:] added to its last
    bin; Q = hist[:i] *without* them, merged into `levels` bins of i // levels (the remainder joins
    the last), each spread evenly over the bins where P is non-zero; both smoothed as MXNet's
    `_smooth_distribution` (eps 1e-4); the i of least KL gives t = the upper edge of bin i − 1.
    levels = 2**(bits−1) two-sided (symmetric, as TensorRT), 2**bits one-sided. One change, from
    TensorRT's toolkit (`_compute_amax_entropy`, pytorch_quantization/calib/histogram.py): bin 0
    takes bin 1's count, so a spike of exact zeros (half a ReLU output) does not decide the
    threshold.

    Returns (max(−t, min), min(t, max)) two-sided, (0, t) one-sided, (0.0, 0.0) if every value is
    0. Raises ValueError for bits outside 2..16, or bins not an integer ≥ levels."""
    bits = grid.check_bits(bits)
    x = _values(x)
    lo, hi = x.min(), x.max()
    one_sided = lo >= 0
    levels = 1 << bits if one_sided else 1 << (bits - 1)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < levels:
        raise ValueError(
            f"bins must be an integer of at least {levels} (the quantized bins at "
            f"{bits} bits), e.g. 2048; got {bins!r}"
        )
    magnitude = x if one_sided else np.abs(x)
    top = magnitude.max()
    if top == 0:
        return 0.0, 0.0
    hist, edges = np.histogram(magnitude, bins=int(bins), range=(0.0, top))
    hist[0] = hist[1]
    t = edges[_least_divergence(hist.astype(np.float64), levels)]
    if one_sided:
        return 0.0, float(t)
    return float(max(-t, lo)), float(min(t, hi))


def _smooth(p: np.ndarray, eps: float = 1e-4) -> np.ndarray | None:
    """MXNet's `_smooth_distribution`: zeros become eps, taken off the non-zero bins; None if p
    is all zero or smoothing leaves a bin ≤ 0 (MXNet asserts; the candidate is then skipped)."""
    zeros = p == 0
    nonzero = p.size - int(zeros.sum())
    smoothed = p + np.where(zeros, eps, -eps * (p.size - nonzero) / max(nonzero, 1))
    return smoothed if np.all(smoothed > 0) else None


def _least_divergence(hist: np.ndarray, levels: int) -> int:
    """The number of bins i (levels..len(hist)) whose reference P and quantized Q differ least."""
    outliers = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # outliers[i] = hist[i:].sum()
    best, best_kl = hist.size, np.inf
    for i in range(levels, hist.size + 1):
        p = hist[:i].copy()
        p[-1] += outliers[i]
        nonzero = (p != 0).astype(np.float64)
        group = np.minimum(
            np.arange(i) // (i // levels), levels - 1
        )  # the rest joins the last group
        counts, norm = np.bincount(group, hist[:i], levels), np.bincount(group, nonzero, levels)
        per_bin = np.divide(counts, norm, out=np.zeros(levels), where=norm > 0)
        q = per_bin[group] * nonzero
        p, q = _smooth(p), _smooth(q)
        if p is None or q is None:
            continue
        p, q = p / p.sum(), q / q.sum()
        kl = float(np.sum(p * np.log(p / q)))
        if kl < best_kl:
            best, best_kl = i, kl
    return best


def choose(x, setting: str, bits: int = 8) -> tuple[float, float]:
    """Returns the range (low, high) `setting` (see `parse`) chooses for the values `x`. Raises
    ValueError for a setting `parse` refuses, or bits outside 2..16."""
    method, argument = parse(setting)
    bits = grid.check_bits(bits)
    if method == "percentile":
        return percentile(x, argument)
    return minmax(x) if method == "minmax" else {"mse": mse, "entropy": entropy}[method](x, bits)


def _aeq(low, high, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """AEQ's asymmetric rule on float32 arrays, step for step: float32 scales, int64 zero points."""
    qmin, qmax = float(-(1 << (bits - 1))), float((1 << (bits - 1)) - 1)
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    bound_max = np.maximum(high, np.zeros_like(high))
    bound_min = np.minimum(low, np.zeros_like(low))
    bound = np.maximum(bound_max - bound_min, AEQ_MIN_BOUND)
    scale = bound / (qmax - qmin)
    return scale, np.rint(qmin - bound_min / scale).astype(np.int64)


def aeq_grid(low: float, high: float, bits: int = 8) -> tuple[float, int]:
    """Returns (scale, zero_point), a Python float and int: the asymmetric signed grid AI Edge
    Quantizer builds for an activation of range (low, high).

    Rule: `tensor_zp_scale_from_min_max`, asymmetric branch
    (ai_edge_quantizer/algorithms/uniform_quantize/uniform_quantize_tensor.py): bound_max =
    max(high, 0), bound_min = min(low, 0), scale = max(bound_max − bound_min, 1e-9) / (qmax − qmin),
    zero_point = rint(qmin − bound_min / scale), qmin = −2**(bits−1), in float32 as in AEQ, whose
    activation qsvs are float32.

    Raises ValueError for a bound that is not finite, low above high, bits outside 2..16, or a
    range too wide for a float32 scale."""
    bits = grid.check_bits(bits)
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"a range must be finite with low <= high, got ({low!r}, {high!r})")
    with np.errstate(over="ignore"):
        scale, zero_point = _aeq([low], [high], bits)
    if not np.isfinite(scale[0]):
        raise ValueError(f"the range ({low!r}, {high!r}) is too wide for a float32 scale")
    return float(scale[0]), int(zero_point[0])


def split(x, low: float, high: float, bits: int = 8) -> dict[str, float]:
    """The error of `x` on the grid AEQ builds from (low, high) (`aeq_grid`), split into rounding
    and clipping by `qlab.analysis.rounding.split`; values round half away, as TFLite's QUANTIZE.

    Returns a dict: scale, zero_point, rounding_mse, clipping_mse, total_mse (squared real
    units), clipped_fraction. Raises ValueError for a range `aeq_grid` refuses."""
    x = _values(x)
    scale, zero_point = aeq_grid(low, high, bits)
    g = grid.Grid(grid.check_bits(bits), np.array([scale]), np.array([zero_point], np.int64))
    errors = rounding.split(x, g)
    return {"scale": scale, "zero_point": zero_point, **{k: errors[k] for k in KEYS}}
