"""Solutions to the checked exercises of notebook 06 (integer arithmetic), with the slips the checks
name.

Hand this out after the session. `qlab.intmath.fixedpoint` holds the same rules
(quantize_multiplier, multiply_by_quantized_multiplier) and
`qlab.intmath.integer_ops.fully_connected_accumulate` the dot product, for comparison.
"""

import numpy as np

from qlab import arith
from qlab.intmath import fixedpoint


def to_multiplier(real):
    """A real rescale factor M as (multiplier, shift), M = multiplier · 2^(shift − 31), as TFLite's
    QuantizeMultiplier writes it: frexp's mantissa in [0.5, 1) times 2^31, rounded half away."""
    q, shift = np.frexp(real)
    multiplier = int(arith.round_half_away(q * 2**31))
    if multiplier == 2**31:  # the mantissa rounded up to 1.0: one more bit of shift
        multiplier, shift = multiplier // 2, shift + 1
    return multiplier, int(shift)


def requantize(acc, multiplier, shift, zero_point, act_min, act_max):
    """int32 accumulators to int8 as LiteRT's builtin kernels on x86-64 do: the rounding doubling
    high multiply, a rounding right shift (both with ties up, as ruy), the zero point, the clamp."""
    high = fixedpoint.rounding_doubling_high_mul(acc, multiplier, ties="up")
    scaled = fixedpoint.rounding_divide_by_pot(
        high, -np.asarray(shift), ties="up"
    )  # every shift here is <= 0
    return np.clip(scaled + zero_point, act_min, act_max).astype(np.int8)


def int8_dot(q_x, x_zero_point, q_w, w_zero_point, bias):
    """One int32 accumulator: Σ (q_x − x_zero_point)·(q_w − w_zero_point) + bias, in a wide type."""
    x = q_x.astype(np.int32) - x_zero_point
    w = q_w.astype(np.int32) - w_zero_point
    return int(np.sum(x * w) + bias)


# -- typical slips ---------------------------------------------------------------------------------
def to_multiplier_truncated(real):
    q, shift = np.frexp(real)
    return int(q * 2**31), int(shift)


def to_multiplier_without_carry(real):
    q, shift = np.frexp(real)
    return int(arith.round_half_away(q * 2**31)), int(shift)


def to_multiplier_right_shift(real):
    multiplier, shift = to_multiplier(real)
    return multiplier, -shift


def requantize_without_zero_point(acc, multiplier, shift, zero_point, act_min, act_max):
    scaled = fixedpoint.multiply_by_quantized_multiplier(acc, multiplier, shift, ties="up")
    return np.clip(scaled, act_min, act_max).astype(np.int8)


def requantize_ties_away(acc, multiplier, shift, zero_point, act_min, act_max):
    scaled = fixedpoint.multiply_by_quantized_multiplier(acc, multiplier, shift, ties="away")
    return np.clip(scaled + zero_point, act_min, act_max).astype(np.int8)


def requantize_in_float(acc, multiplier, shift, zero_point, act_min, act_max):
    real = acc * (multiplier * 2.0 ** (np.asarray(shift) - 31))
    return np.clip(arith.round_half_away(real) + zero_point, act_min, act_max).astype(np.int8)


def requantize_without_clamp(acc, multiplier, shift, zero_point, act_min, act_max):
    scaled = fixedpoint.multiply_by_quantized_multiplier(acc, multiplier, shift, ties="up")
    return (scaled + zero_point).astype(np.int8)


def int8_dot_without_input_zero_point(q_x, x_zero_point, q_w, w_zero_point, bias):
    return int(np.sum(q_x.astype(np.int32) * (q_w.astype(np.int32) - w_zero_point)) + bias)


def int8_dot_in_int8(q_x, x_zero_point, q_w, w_zero_point, bias):
    x = q_x - np.int8(x_zero_point)  # int8 arithmetic: -5 - (-128) wraps around
    w = q_w - np.int8(w_zero_point)
    return int(np.sum((x * w).astype(np.int8), dtype=np.int64) + bias)


def int8_dot_without_bias(q_x, x_zero_point, q_w, w_zero_point, bias):
    return int8_dot(q_x, x_zero_point, q_w, w_zero_point, 0)


SOLUTIONS = {
    "check_quantize_multiplier": to_multiplier,
    "check_requantize": requantize,
    "check_int8_dot": int8_dot,
}
MISTAKES = {
    "check_quantize_multiplier": [
        to_multiplier_truncated,
        to_multiplier_without_carry,
        to_multiplier_right_shift,
    ],
    "check_requantize": [
        requantize_without_zero_point,
        requantize_ties_away,
        requantize_in_float,
        requantize_without_clamp,
    ],
    "check_int8_dot": [int8_dot_without_input_zero_point, int8_dot_in_int8, int8_dot_without_bias],
}
