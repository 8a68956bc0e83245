"""The arithmetic of uniform quantization, defined once: real = (q − zero_point) × scale.

NumPy only, and the bottom of qlab: the LiteRT wrapper's input and output, the grids, the
integer engine and the captured tensors all quantize, dequantize and round through these
functions. Scales and zero points are per tensor (one of each) or per axis (one per slice
along `axis`, as int8 weights have one per output channel).
"""

from __future__ import annotations

import numpy as np


def round_half_away(v) -> np.ndarray:
    """Round to the nearest integer, halves away from zero, as TFLite's kernels do.

    Source: `TfLiteRound` (tflite/kernels/internal/cppmath.h, std::round). NumPy's own
    `np.round` rounds halves to even; `round_half_even` is that rule.

    Returns:
        float64 array (or the input's float dtype) of the shape of `v`, integral values.
    """
    v = np.asarray(v)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def round_half_even(v) -> np.ndarray:
    """Round to the nearest integer, halves to the even neighbour (IEEE default, `lrintf`).

    XNNPACK's requantization rounds this way (`cvtps2dq` with the default rounding mode).

    Returns:
        array of the shape and float dtype of `v`, integral values.
    """
    return np.rint(np.asarray(v))


def along(values, ndim: int, axis: int | None, size: int | None = None) -> np.ndarray:
    """Per-axis parameters shaped to broadcast against a tensor of `ndim` dimensions.

    Args:
        values: one value per slice (per axis) or one value (per tensor).
        ndim: the tensor's number of dimensions.
        axis: the quantized axis, or None for per-tensor parameters.
        size: the tensor's length along `axis`, checked against len(values) if given.

    Returns:
        `values` as an array of shape (1, ..., n, ..., 1) with n on `axis`, or a 0-d array.

    Raises:
        ValueError: per-axis parameters whose count does not match the tensor along `axis`,
            or an axis the tensor does not have.
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

    The division runs in float64 and rounds half away from zero (`TfLiteRound`), as the
    TFLite QUANTIZE kernel's reference rule does (tflite/kernels/internal/reference/to_tflite.h).

    Args:
        x: real values, any shape.
        scale, zero_point: one of each, or one per slice along `axis`.
        qmin, qmax: the integer range, e.g. -128 and 127 for int8 (-127 for narrow range).
        axis: the quantized axis of per-axis parameters.

    Returns:
        int64 array of the shape of `x`, each value in [qmin, qmax].

    Raises:
        ValueError: NaN in `x`; a scale that is not finite and positive; a zero point that is not
            a whole number; qmin above qmax; parameters that do not fit the tensor (see `along`).
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
    """Integers to the real values they stand for: real = (q − zero_point) × scale.

    Args:
        q: integers, any shape and integer dtype.
        scale, zero_point: one of each, or one per slice along `axis`.
        axis: the quantized axis of per-axis parameters.
        dtype: the float type the subtraction and product run in (float64 by default; the
            float shortcut of the integer engine uses float32, as a float kernel would).

    Returns:
        array of `dtype` and the shape of `q`.

    Raises:
        ValueError: parameters that do not fit the tensor (see `along`).
    """
    q = np.asarray(q)
    size = q.shape[axis] if axis is not None and -q.ndim <= axis < q.ndim else None
    s = along(np.asarray(scale).astype(dtype), q.ndim, axis, size)
    z = along(np.asarray(zero_point).astype(dtype), q.ndim, axis, size)
    return (q.astype(dtype) - z) * s


def integer_range(dtype) -> tuple[int, int]:
    """The integer range of a dtype.

    Returns:
        (smallest, largest) as Python ints: (-128, 127) for int8, (0, 255) for uint8.

    Raises:
        ValueError: a dtype that is not an integer type.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise ValueError(f"{dtype} is not an integer type")
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)
