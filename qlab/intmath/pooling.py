"""Pooling and MEAN of an int8 .tflite in NumPy: the maximum and the rounded average over
windows, and the requantized mean over axes (what GlobalAveragePooling2D converts to).

Every function works on whole batches, int64 arithmetic inside. Each names the LiteRT source
it follows; none of their code is copied. Pooling needs no rescaling: its input and output
share a grid (GenericPrepare in tflite/kernels/pooling.cc checks it). MEAN rescales, with one
of two rules: the reference one (used by the builtin kernels too, except in one case) subtracts
the zero point from the sum and folds 1/count into the multiplier in integers; the builtin
kernels' 4-D spatial mean with keep_dims folds it in float32, adds a rounded float bias and
rounds its vector lanes and its scalar tail differently (`qlab.intmath.simd`).
"""

from __future__ import annotations

import numpy as np

from qlab.intmath.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap32
from qlab.intmath.integer_ops import windows
from qlab.intmath.simd import multiply_by_quantized_multiplier_simd, vector_part


# -- pooling --------------------------------------------------------------------------------------
def max_pool(
    q, kernel: tuple[int, int], stride: tuple[int, int], padding: str, act_min: int, act_max: int
) -> np.ndarray:
    """The largest integer of each window, clamped to the fused activation's range.

    Padded positions are left out, as in optimized_integer_ops::MaxPool (tflite/kernels/
    internal/optimized/integer_ops/pooling.h) and reference_integer_ops::MaxPool (reference/
    integer_ops/pooling.h); padding them with the dtype's minimum gives the same maximum.

    Args:
        q: (n, h, w, c) integers (int8).
        kernel, stride: (height, width) pairs.
        padding: "SAME" or "VALID".
        act_min, act_max: the output's clamp (CalculateActivationRangeQuantized).

    Returns:
        array of q's dtype, (n, out_h, out_w, c).

    Raises:
        NotImplementedError: a padding other than SAME or VALID.
    """
    q = np.asarray(q)
    patches = windows(q, kernel, stride, padding=padding, pad_value=np.iinfo(q.dtype).min)
    return np.clip(patches.max(axis=3), act_min, act_max).astype(q.dtype)


def average_pool(
    q, kernel: tuple[int, int], stride: tuple[int, int], padding: str, act_min: int, act_max: int
) -> np.ndarray:
    """The average of each window's integers, rounded half away from zero, then clamped.

    Follows optimized_integer_ops::AveragePool (tflite/kernels/internal/optimized/integer_ops/
    pooling.h) and reference_integer_ops::AveragePool (reference/integer_ops/pooling.h), which
    agree: the raw integers (zero point not subtracted: input and output share it) are summed
    in int32 over the positions inside the image only, and the sum s over those `count`
    positions becomes (s + count/2) / count for s > 0, (s − count/2) / count otherwise, with
    C's integer division (truncation towards zero).

    Args:
        q: (n, h, w, c) integers (int8).
        kernel, stride: (height, width) pairs.
        padding: "SAME" or "VALID".
        act_min, act_max: the output's clamp.

    Returns:
        array of q's dtype, (n, out_h, out_w, c).

    Raises:
        NotImplementedError: a padding other than SAME or VALID.
    """
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
    """The multiplier and shift of the reference MEAN rule, 1/count folded in.

    PrepareMeanOrSum (tflite/kernels/reduce.cc) quantizes S_in / S_out (in double) to a
    multiplier and shift; reference_ops::QuantizedMeanOrSum (tflite/kernels/internal/reference/
    reduce.h) then takes k = floor(log2(count)), at most 32 and at most 31 + shift, and uses
    (multiplier · 2^k) // count with shift − k.

    Returns:
        (multiplier, shift) as Python ints; the shift is a power of two (negative: right).
    """
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

    Follows reference_ops::QuantizedMeanOrSum (tflite/kernels/internal/reference/reduce.h), which
    both the reference and the builtin kernels call for int8 MEAN (EvalQuantizedMean in
    tflite/kernels/reduce.cc), except the builtin 4-D spatial mean with keep_dims
    (`mean_spatial`): the int32 sum minus input_zero_point · count, MultiplyByQuantizedMultiplier
    (double rounding, ties away), plus the output zero point, clamped to the dtype (MEAN has no
    fused activation).

    Args:
        q: integers (int8), batch axis first.
        axes: the axes to average over (non-negative, without duplicates).
        keep_dims: keep the averaged axes with length 1.
        multiplier, shift: from `mean_rescale`.

    Returns:
        array of q's dtype, q's shape without `axes` (or with length 1 there, with keep_dims).
    """
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
    """The multiplier, shift and bias of the builtin 4-D spatial MEAN, computed in float32.

    Follows optimized_integer_ops::Mean (tflite/kernels/internal/optimized/integer_ops/mean.h):
    the bias is output_zero_point − trunc(zp_in · S_in / S_out ± 0.5) (float32, rounded half
    away), the scale S_in / (count · S_out) in float32, quantized with QuantizeMultiplier.

    Returns:
        (multiplier, shift, bias) as Python ints.
    """
    f32 = np.float32
    temp = f32(f32(input_zero_point) * f32(input_scale)) / f32(output_scale)
    temp = temp + f32(0.5) if temp > 0 else temp - f32(0.5)
    real = f32(input_scale) / f32(f32(count) * f32(output_scale))
    multiplier, shift = (int(v[0]) for v in quantize_multiplier(float(real)))
    return multiplier, shift, output_zero_point - int(temp)


def mean_spatial(q, multiplier: int, shift: int, bias: int, lanes: int = 0) -> np.ndarray:
    """The builtin kernels' int8 MEAN over height and width with keep_dims, on 4-D input.

    Follows optimized_integer_ops::MeanImpl (tflite/kernels/internal/optimized/integer_ops/
    mean.h), which EvalMean (tflite/kernels/reduce.cc) picks for int8, keep_dims, 4-D input and
    axes {1, 2}: the raw int32 sum (zero point not subtracted), rescaled, plus the bias, clamped
    to int8. The first channels, `lanes` at a time, go through its NEON loop
    (MultiplyByQuantizedMultiplier4Rows: ties up), the remaining channels through
    MultiplyByQuantizedMultiplier (ties away): `simd.multiply_by_quantized_multiplier_simd`.
    With one thread, as `qlab.tflite.runtime` runs LiteRT (more threads split the channels, and each
    share has its own tail).

    Args:
        q: (n, h, w, c) int8.
        multiplier, shift, bias: from `mean_spatial_rescale`.
        lanes: channels per vector iteration (16); 0 rounds every channel ties away.

    Returns:
        int8 array of shape (n, 1, 1, c).
    """
    q = np.asarray(q)
    total = wrap32(q.astype(np.int64).sum(axis=(1, 2), keepdims=True))
    vector = vector_part(q.shape[-1], lanes)
    scaled = multiply_by_quantized_multiplier_simd(total, multiplier, shift, vector) + bias
    info = np.iinfo(q.dtype)
    return np.clip(scaled, info.min, info.max).astype(q.dtype)
