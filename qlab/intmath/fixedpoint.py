"""Fixed-point arithmetic of an int8 .tflite's kernels, one NumPy function per rule.

Integers are held in int64 arrays, so nothing overflows by accident; where the kernels compute in
32 bits and wrap, `wrap32` does the same. Each rule names the LiteRT, ruy, gemmlowp or XNNPACK
source it follows; none of their code is copied. Rounding "ties" are named for what happens to an
exact half: "away" (from zero), "up" (towards +infinity), "even" (to the even neighbour)."""

from __future__ import annotations

import numpy as np

from qlab.arith import round_half_away, round_half_even

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
"""The range of an int32 register, where the kernels saturate."""


def wrap32(x: np.ndarray) -> np.ndarray:
    """Returns what a 32-bit register holds (two's complement wrap-around), as int64."""
    return (np.asarray(x, np.int64) + 2**31) % 2**32 - 2**31


# -- the quantized multiplier -----------------------------------------------------------------
def quantize_multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    """A positive real scale as multiplier × 2^(shift − 31), multiplier a 31-bit integer.

    QuantizeMultiplier in tflite/kernels/internal/quantization_util.cc: frexp gives real = q ×
    2^shift, q in [0.5, 1); multiplier = round(q × 2^31), half away from zero. A q that rounds up to
    2^31 is halved and the shift raised by one; a shift below -31 flushes to 0, 0; zero gives 0, 0.

    Returns (multiplier, shift), int64 arrays of the shape of `np.atleast_1d(real)`: multiplier
    in [2^30, 2^31 - 1] or 0, shift positive for a left shift. Raises ValueError for a negative,
    infinite or NaN scale."""
    real = np.atleast_1d(np.asarray(real, np.float64))
    if np.any(real < 0) or not np.all(np.isfinite(real)):
        raise ValueError(f"a requantization scale must be finite and non-negative, got {real}")
    q, shift = np.frexp(real)
    multiplier = round_half_away(q * 2.0**31).astype(np.int64)
    shift = shift.astype(np.int64)
    carry = multiplier == 2**31  # q rounded up to 1.0: halve it, one more bit of shift
    multiplier[carry] //= 2
    shift[carry] += 1
    tiny = shift < -31  # every bit would be shifted out: the runtime flushes these to zero
    multiplier[tiny], shift[tiny] = 0, 0
    return multiplier, shift


def rounding_doubling_high_mul(a, b, ties: str = "away") -> np.ndarray:
    """Returns the high 32 bits of 2·a·b, rounded: (a·b) / 2^31 to the nearest integer, int64.

    ties="away": gemmlowp's SaturatingRoundingDoublingHighMul (fixedpoint/fixedpoint.h), as
    TFLite's reference kernels; only it saturates INT32_MIN × INT32_MIN to INT32_MAX. ties="up":
    ruy's x86 kernels (ruy/kernel_avx2_fma.cc, kernel_avx512.cc: add 2^30, shift right by 31), as
    LiteRT's builtin kernels on x86. gemmlowp's nudge also sends an exact half up, so the two
    agree elsewhere. Raises ValueError for other `ties`."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    if ties == "up":
        return (ab + 2**30) >> 31
    if ties != "away":
        raise ValueError(f"ties must be 'away' or 'up', got {ties!r}")
    nudged = ab + np.where(ab >= 0, 2**30, 1 - 2**30)
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # C division truncates
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent, ties: str = "away") -> np.ndarray:
    """Returns x / 2^exponent rounded to nearest (a rounding arithmetic right shift), int64.

    ties="away": gemmlowp's RoundingDivideByPOT (fixedpoint/fixedpoint.h); ties="up": ruy's x86
    kernels (ruy/kernel_avx2_fma.cc, kernel_avx512.cc: add 2^(exponent-1), shift right). Exponent
    0 to 31, broadcast against `x`. Raises ValueError for other `ties`."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    if ties == "up":
        return (
            x + np.where(exponent > 0, np.left_shift(1, np.maximum(exponent - 1, 0)), 0)
        ) >> exponent
    if ties != "away":
        raise ValueError(f"ties must be 'away' or 'up', got {ties!r}")
    mask = np.left_shift(1, exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift, ties: str = "away") -> np.ndarray:
    """Returns x × multiplier × 2^(shift − 31) in integers, int64, before the zero point and clamp.

    MultiplyByQuantizedMultiplier (tflite/kernels/internal/common.cc, double rounding): a left
    shift for shift > 0 (in 32 bits), the rounding doubling high multiply, then a rounding right
    shift for shift < 0, both rounding by `ties` ("away": gemmlowp, "up":
    ruy/kernel_avx2_fma.cc). Raises ValueError for other `ties`."""
    shift = np.asarray(shift, np.int64)
    shifted = wrap32(np.asarray(x, np.int64) << np.maximum(shift, 0))
    high = rounding_doubling_high_mul(shifted, multiplier, ties)
    return rounding_divide_by_pot(high, np.maximum(-shift, 0), ties)


def requantize_fp32(acc, scale) -> np.ndarray:
    """XNNPACK's rule: float32(acc) × float32 scale, rounded half to even (cvtps2dq / lrintf).

    XNNPACK computes scale = input_scale × kernel_scale / output_scale in float32
    (src/operators/convolution-nhwc.c, fully-connected-nc.c); one scale or one per output channel
    (last axis). Returns int64, before the zero point and clamp."""
    y = np.asarray(acc).astype(np.float32) * np.asarray(scale, np.float32)
    return round_half_even(y).astype(np.int64)


def activation_range(activation: str, scale: float, zero_point: int, dtype) -> tuple[int, int]:
    """The int range a fused activation clamps to (CalculateActivationRangeQuantized,
    kernel_util.cc).

    The bounds 0, 6, -1 and 1 are quantized as zero_point + round(bound / scale), the division in
    float32 and ties away (TfLiteRound), then kept inside the dtype's range.

    Returns (act_min, act_max), Python ints. Raises NotImplementedError for a fused activation
    other than NONE, RELU, RELU6, RELU_N1_TO_1."""
    info = np.iinfo(dtype)

    def q(real):
        return zero_point + int(round_half_away(np.float64(np.float32(real) / np.float32(scale))))

    if activation == "NONE":
        return info.min, info.max
    if activation == "RELU":
        return max(info.min, q(0.0)), info.max
    if activation == "RELU6":
        return max(info.min, q(0.0)), min(info.max, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(info.min, q(-1.0)), min(info.max, q(1.0))
    raise NotImplementedError(
        f"fused activation {activation} is not implemented by qlab.intmath; "
        "implemented: NONE, RELU, RELU6, RELU_N1_TO_1"
    )


def srdhm(a, b) -> np.ndarray:
    """Returns gemmlowp's SaturatingRoundingDoublingHighMul (ties away), the product of two
    fixed-point numbers (fixedpoint/fixedpoint.h, operator*)."""
    return rounding_doubling_high_mul(a, b, "away")


def saturating_shift_left(x, bits: int) -> np.ndarray:
    """Returns x · 2^bits saturated to int32, int64 (bits 1 to 31).

    gemmlowp's SaturatingRoundingMultiplyByPOT<bits> for bits > 0 (fixedpoint/fixedpoint.h)."""
    limit = 2 ** (31 - bits) - 1
    return np.where(x > limit, INT32_MAX, np.where(x < -limit, INT32_MIN, x << bits))


def exp_on_negative_values(a: np.ndarray, integer_bits: int = 5) -> np.ndarray:
    """Returns exp(a) for raw fixed-point a ≤ 0 with `integer_bits` integer bits (Q5.26), as raw
    Q0.31 in [0, INT32_MAX].

    gemmlowp's exp_on_negative_values (fixedpoint/fixedpoint.h): a 4th-order Taylor expansion
    around −1/8 on [−1/4, 0), then a constant exp(−2^k) per set bit of the remaining quarters.
    exp(0) is INT32_MAX. integer_bits <= 5 only: gemmlowp's clamp below −32 is not reproduced."""
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter  # in [−1/4, 0)
    x = saturating_shift_left(a_mod, integer_bits) + (1 << 28)  # Q0.31, then x = a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4_over_4 = rounding_divide_by_pot(srdhm(x2, x2), 2)
    poly = rounding_divide_by_pot(srdhm(x4_over_4 + x3, 715827883) + x2, 1)  # 715827883 = 1/3
    result = 1895147668 + srdhm(1895147668, x + poly)  # 1895147668 = exp(−1/8)
    remainder = wrap32(a_mod - a)
    for k, constant in zip(
        range(-2, 5), (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)
    ):  # exp(−2^k) in Q0.31
        if integer_bits > k:
            result = np.where(remainder & (1 << (frac + k)), srdhm(result, constant), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """Returns 1 / (1 + a) for raw Q0.31 a in [0, 1), as raw Q0.31 (at most INT32_MAX).

    gemmlowp's one_over_one_plus_x_for_x_in_0_1 (fixedpoint/fixedpoint.h), three Newton-Raphson
    steps, which TFLite's GetReciprocal (tflite/kernels/internal/common.h) calls for the softmax
    sum."""
    total = a + INT32_MAX
    half_denominator = (total + np.where(total >= 0, 1, -1)) // 2  # RoundingHalfSum(a, 1)
    x = 1515870810 + srdhm(half_denominator, -1010580540)  # 48/17 − 32/17 · d, Q2.29
    for _ in range(3):
        one_minus = (1 << 29) - srdhm(half_denominator, x)
        x = x + saturating_shift_left(srdhm(x, one_minus), 2)
    return saturating_shift_left(x, 1)
