"""The arithmetic of uniform quantization, defined once: real = (q − zero_point) × scale.

NumPy only, the bottom of qlab. Scales and zero points are per tensor (one of each) or per axis
(one per slice along `axis`, as int8 weights have one per output channel).
"""

from __future__ import annotations

import numpy as np


def round_half_away(v) -> np.ndarray:
    """Round to the nearest integer, halves away from zero, as TFLite's kernels do.

    Source: `TfLiteRound` (tflite/kernels/internal/cppmath.h, std::round).
    Returns a float array of the shape of `v` holding integral values.
    """
    v = np.asarray(v)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def round_half_even(v) -> np.ndarray:
    """Round to the nearest integer, halves to even, as XNNPACK's requantization does
    (`cvtps2dq` with the default rounding mode). Returns a float array of integral values."""
    return np.rint(np.asarray(v))


def along(values, ndim: int, axis: int | None, size: int | None = None) -> np.ndarray:
    """Returns `values` shaped (1, ..., n, ..., 1) with n on `axis`, or 0-d when `axis` is None.

    Raises ValueError when the count does not match `size` (the tensor's length along `axis`)
    or the tensor has no such axis.
    """
    values = np.asarray(values)
    if axis is None:
        if values.size != 1:
            raise ValueError(
                f"{values.size} scales or zero points but no axis: per-tensor "
                "parameters are one of each; pass axis= for per-axis ones"
            )
        return values.reshape(())
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} does not exist in a tensor of {ndim} dimensions")
    if size is not None and size != values.size:
        raise ValueError(
            f"{values.size} per-axis scales or zero points for a tensor with {size} "
            f"slices along axis {axis}"
        )
    shape = [1] * ndim
    shape[axis % ndim] = values.size
    return values.reshape(shape)


def quantize(x, scale, zero_point, qmin: int, qmax: int, axis: int | None = None) -> np.ndarray:
    """Real values to integers: q = clamp(round(x / scale) + zero_point, qmin, qmax).

    Divides in float64 and rounds half away from zero, as the TFLite QUANTIZE kernel's reference
    rule does (tflite/kernels/internal/reference/to_tflite.h).
    Returns int64 of the shape of `x`. Raises ValueError for NaN in `x`, a scale not finite and
    positive, a zero point not whole, qmin above qmax, or parameters that do not fit (`along`).
    """
    x = np.asarray(x, np.float64)
    if np.isnan(x).any():
        raise ValueError("cannot quantize NaN: it has no integer; check the input for NaN first")
    scale, zero_point = np.asarray(scale, np.float64), np.asarray(zero_point)
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ValueError(f"a scale must be finite and positive, got {scale}")
    if not np.all(np.mod(zero_point, 1) == 0):
        raise ValueError(f"a zero point must be a whole number, got {zero_point}")
    if qmin > qmax:
        raise ValueError(f"qmin {qmin} is above qmax {qmax}")
    size = x.shape[axis] if axis is not None and -x.ndim <= axis < x.ndim else None
    s = along(scale, x.ndim, axis, size)
    z = along(zero_point.astype(np.int64), x.ndim, axis, size)
    with np.errstate(over="ignore"):  # ±inf rounds to ±inf and clamps to qmin or qmax, as intended
        return np.clip(round_half_away(x / s) + z, qmin, qmax).astype(np.int64)


def dequantize(q, scale, zero_point, axis: int | None = None, dtype=np.float64) -> np.ndarray:
    """Integers to real values: real = (q − zero_point) × scale, computed in `dtype`.

    Returns an array of `dtype` and the shape of `q`. Raises ValueError as `along` does.
    """
    q = np.asarray(q)
    size = q.shape[axis] if axis is not None and -q.ndim <= axis < q.ndim else None
    s = along(np.asarray(scale).astype(dtype), q.ndim, axis, size)
    z = along(np.asarray(zero_point).astype(dtype), q.ndim, axis, size)
    return (q.astype(dtype) - z) * s


def integer_range(dtype) -> tuple[int, int]:
    """Returns (smallest, largest) as ints, e.g. (-128, 127) for int8.

    Raises ValueError for a dtype that is not an integer type.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise ValueError(f"{dtype} is not an integer type")
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)
