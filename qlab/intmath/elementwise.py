"""Element-wise int8 ops of a .tflite in NumPy: ADD, whose two inputs live on different grids.

Each input is brought to a common, finer grid (shifted left by 20 bits, scaled by its own
multiplier below one), the two are added in int32, and the sum is rescaled to the output's grid.
The builtin kernels' vector loop and scalar tail round differently (`qlab.intmath.simd`)."""

from __future__ import annotations

import numpy as np

from qlab.intmath.fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    rounding_doubling_high_mul,
    wrap32,
)
from qlab.intmath.simd import vector_part

ADD_LEFT_SHIFT = 20
"""The left shift of int8 ADD's inputs (15 for int16): Prepare in tflite/kernels/add.cc."""


def add_rescale(
    input1_scale: float, input2_scale: float, output_scale: float, left_shift: int = ADD_LEFT_SHIFT
) -> tuple[tuple[int, int], ...]:
    """The three multipliers and shifts of an int8 ADD, as Prepare in tflite/kernels/add.cc.

    With m = 2 · max(S1, S2), input i is scaled by S_i / m and the sum by m / (2^left_shift ·
    S_out), each quantized by QuantizeMultiplierSmallerThanOneExp
    (tflite/kernels/internal/quantization_util.cc).

    Returns ((multiplier1, shift1), (multiplier2, shift2), (output_multiplier, output_shift)),
    Python ints, every shift ≤ 0. Raises ValueError for a real multiplier outside (0, 1), which
    LiteRT's Prepare refuses."""
    twice_max = 2.0 * max(float(input1_scale), float(input2_scale))
    reals = (
        float(input1_scale) / twice_max,
        float(input2_scale) / twice_max,
        twice_max / (2.0**left_shift * float(output_scale)),
    )
    if not all(0.0 < r < 1.0 for r in reals):
        raise ValueError(
            f"ADD's real multipliers must lie in (0, 1) (QuantizeMultiplierSmallerThanOneExp); "
            f"these scales give {', '.join(f'{r:.6g}' for r in reals)}"
        )
    return tuple((int(m[0]), int(s[0])) for m, s in (quantize_multiplier(r) for r in reals))


def add(
    a,
    b,
    zero_points: tuple[int, int],
    rescale: tuple[tuple[int, int], ...],
    output_zero_point: int,
    act_min: int,
    act_max: int,
    lanes: int = 0,
    left_shift: int = ADD_LEFT_SHIFT,
) -> np.ndarray:
    """int8 ADD of `a` and `b` (one shape, no broadcasting) with `add_rescale`'s `rescale`.

    Scalar rule, reference_integer_ops::AddFunc (reference/integer_ops/add.h) and the scalar loop of
    AddElementwiseInt8 (optimized/integer_ops/add.h): x_i = (q_i − zp_i) · 2^left_shift, each scaled
    by MultiplyByQuantizedMultiplierSmallerThanOneExp (SaturatingRoundingDoublingHighMul, then
    RoundingDivideByPOT: ties away), the int32 sum scaled likewise by the output multiplier, plus
    the zero point, clamped.

    Vector rule, the NEON loop of AddElementwiseInt8 (NEON_2_SSE on x86-64, `qlab.intmath.simd`) for
    the first size − size % lanes values of the flattened tensor: one shift of q_i − zp_i by
    left_shift + shift_i, vqrdmulhq_s32 (ties up) and no second rounding; the sum through
    vqrdmulhq_s32 (ties up) and RoundingDivideByPOT (ties away); narrowed to int16 (vmovn_s32), the
    zero point added in int16, saturated to int8 (vqmovn_s16), clamped. lanes=0: the scalar rule
    throughout (reference kernels).

    Returns an array of a's dtype and shape."""
    a = np.asarray(a)
    qs = [np.asarray(q, np.int64) - zp for q, zp in zip((a, b), zero_points)]
    mo, so = rescale[2]
    scaled = [
        multiply_by_quantized_multiplier(q << left_shift, m, s, "away")
        for q, (m, s) in zip(qs, rescale)
    ]
    out = (
        multiply_by_quantized_multiplier(wrap32(scaled[0] + scaled[1]), mo, so, "away")
        + output_zero_point
    )
    out = np.clip(out, act_min, act_max)
    vector = vector_part(a.size, lanes).reshape(a.shape)
    if vector.any():
        shifted = [
            q << (left_shift + s) if left_shift + s >= 0 else q >> -(left_shift + s)
            for q, (_, s) in zip(qs, rescale)
        ]
        total = wrap32(
            sum(rounding_doubling_high_mul(x, m, "up") for x, (m, _) in zip(shifted, rescale))
        )
        v = rounding_divide_by_pot(rounding_doubling_high_mul(total, mo, "up"), -so, "away")
        v = _wrap16(_wrap16(v) + output_zero_point)  # vmovn_s32, then vaddq_s16
        out = np.where(vector, np.clip(np.clip(v, -128, 127), act_min, act_max), out)
    return out.astype(a.dtype)


def _wrap16(x: np.ndarray) -> np.ndarray:
    """What a 16-bit lane holds (two's complement wrap-around)."""
    return (x + 2**15) % 2**16 - 2**15
