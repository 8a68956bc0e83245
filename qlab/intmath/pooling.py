"""Pooling and MEAN of an int8 .tflite in NumPy, whole batches, int64 inside. Each function names
the LiteRT source it follows; none of their code is copied.

Pooling needs no rescaling: input and output share a grid (GenericPrepare in
tflite/kernels/pooling.cc). MEAN rescales by one of two rules: the reference one folds 1/count
into the multiplier in integers; the builtin 4-D spatial mean with keep_dims folds it in float32,
adds a rounded float bias and rounds its vector lanes and scalar tail differently
(`qlab.intmath.simd`)."""

from __future__ import annotations

import numpy as np

from qlab.intmath.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap32
from qlab.intmath.integer_ops import windows
from qlab.intmath.simd import multiply_by_quantized_multiplier_simd, vector_part


# -- pooling --------------------------------------------------------------------------------------
def max_pool(
    q, kernel: tuple[int, int], stride: tuple[int, int], padding: str, act_min: int, act_max: int
) -> np.ndarray:
    """Returns the largest integer of each window, clamped: q's dtype, (n, out_h, out_w, c).

    Padded positions are left out, as optimized_integer_ops::MaxPool
    (optimized/integer_ops/pooling.h) and reference_integer_ops::MaxPool (reference/integer_ops/
    pooling.h). Raises NotImplementedError for a padding other than SAME or VALID."""
    q = np.asarray(q)
    patches = windows(q, kernel, stride, padding=padding, pad_value=np.iinfo(q.dtype).min)
    return np.clip(patches.max(axis=3), act_min, act_max).astype(q.dtype)


def average_pool(
    q, kernel: tuple[int, int], stride: tuple[int, int], padding: str, act_min: int, act_max: int
) -> np.ndarray:
    """Returns each window's average, rounded half away, clamped: q's dtype, (n, out_h, out_w, c).

    optimized_integer_ops::AveragePool (optimized/integer_ops/pooling.h) and
    reference_integer_ops::AveragePool (reference/integer_ops/pooling.h) agree: the raw integers
    summed in int32 over the positions inside the image, then (s ± count/2) / count with C's
    truncating division. Raises NotImplementedError for a padding other than SAME or VALID."""
    q = np.asarray(q)
    total = windows(q.astype(np.int64), kernel, stride, padding=padding).sum(axis=3)
    count = windows(np.ones((1, *q.shape[1:3], 1), np.int64), kernel, stride, padding=padding).sum(
        axis=3
    )
    half = count // 2
    rounded = np.where(
        total > 0, (total + half) // count, -((half - total) // count)
    )  # C's truncation
    return np.clip(rounded, act_min, act_max).astype(q.dtype)


# -- mean -----------------------------------------------------------------------------------------
def mean_rescale(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """Returns (multiplier, shift), Python ints, of the reference MEAN rule, 1/count folded in.

    PrepareMeanOrSum (tflite/kernels/reduce.cc) quantizes S_in / S_out (double);
    reference_ops::QuantizedMeanOrSum (reference/reduce.h) takes k = floor(log2(count)), at most
    32 and 31 + shift, and uses (multiplier · 2^k) // count with shift − k."""
    multiplier, shift = (
        int(v[0]) for v in quantize_multiplier(float(input_scale) / float(output_scale))
    )
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << k) // count, shift - k


def mean(
    q,
    axes: tuple[int, ...],
    keep_dims: bool,
    input_zero_point: int,
    multiplier: int,
    shift: int,
    output_zero_point: int,
) -> np.ndarray:
    """The reference MEAN rule: (Σ q − zero_point · count) rescaled by `mean_rescale`'s multiplier.

    reference_ops::QuantizedMeanOrSum (reference/reduce.h), which both kernels call for int8 MEAN
    (EvalQuantizedMean, tflite/kernels/reduce.cc) but for the builtin 4-D spatial mean
    (`mean_spatial`): MultiplyByQuantizedMultiplier (ties away), plus the output zero point, clamped
    to the dtype.

    Returns an array of q's dtype without `axes` (length 1 there with keep_dims)."""
    q = np.asarray(q)
    count = int(np.prod([q.shape[a] for a in axes]))
    total = wrap32(
        q.astype(np.int64).sum(axis=tuple(axes), keepdims=keep_dims) - input_zero_point * count
    )
    scaled = multiply_by_quantized_multiplier(total, multiplier, shift, "away") + output_zero_point
    info = np.iinfo(q.dtype)
    return np.clip(scaled, info.min, info.max).astype(q.dtype)


def mean_spatial_rescale(
    input_scale: float,
    input_zero_point: int,
    output_scale: float,
    output_zero_point: int,
    count: int,
) -> tuple[int, int, int]:
    """Returns (multiplier, shift, bias), Python ints, of the builtin 4-D spatial MEAN, in float32.

    optimized_integer_ops::Mean (optimized/integer_ops/mean.h): bias = output_zero_point −
    trunc(zp_in · S_in / S_out ± 0.5), scale S_in / (count · S_out) quantized by
    QuantizeMultiplier."""
    f32 = np.float32
    temp = f32(f32(input_zero_point) * f32(input_scale)) / f32(output_scale)
    temp = temp + f32(0.5) if temp > 0 else temp - f32(0.5)
    real = f32(input_scale) / f32(f32(count) * f32(output_scale))
    multiplier, shift = (int(v[0]) for v in quantize_multiplier(float(real)))
    return multiplier, shift, output_zero_point - int(temp)


def mean_spatial(q, multiplier: int, shift: int, bias: int, lanes: int = 0) -> np.ndarray:
    """The builtin kernels' int8 MEAN over height and width with keep_dims, on 4-D input.

    optimized_integer_ops::MeanImpl (optimized/integer_ops/mean.h), which EvalMean
    (tflite/kernels/reduce.cc) picks for int8, keep_dims, 4-D, axes {1, 2}: the raw int32 sum,
    rescaled, plus the bias, clamped. The first channels, `lanes` at a time, round ties up
    (MultiplyByQuantizedMultiplier4Rows), the rest ties away
    (`simd.multiply_by_quantized_multiplier_simd`); one thread, as `qlab.tflite.runtime` runs
    LiteRT.

    Returns an int8 array (n, 1, 1, c)."""
    q = np.asarray(q)
    total = wrap32(q.astype(np.int64).sum(axis=(1, 2), keepdims=True))
    vector = vector_part(q.shape[-1], lanes)
    scaled = multiply_by_quantized_multiplier_simd(total, multiplier, shift, vector) + bias
    info = np.iinfo(q.dtype)
    return np.clip(scaled, info.min, info.max).astype(q.dtype)
