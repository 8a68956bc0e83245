"""Solutions to the checked exercises of notebook 00 (the primer), with the slips the checks name.

Hand this out after the session. Each solution is a few lines of NumPy; `qlab.arith` holds the same
rules (quantize, dequantize, rounding halves away from zero) for comparison.
"""

import numpy as np

from qlab import arith


def to_int8(x, scale, zero_point):
    """Real values to int8 codes: round half away from zero, add the zero point, clip, cast."""
    q = arith.round_half_away(np.asarray(x, np.float64) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def choose_scale_zero_point(lo, hi):
    """An asymmetric int8 grid for [lo, hi]: the range widened to include 0, 255 steps across it."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255
    zero_point = int(np.clip(arith.round_half_away(-128 - lo / scale), -128, 127))
    return scale, zero_point


def fake_quant(x, scale, zero_point):
    """Quantize then dequantize, in float: each value moved onto the nearest level of the grid."""
    q = to_int8(x, scale, zero_point).astype(np.int64)
    return arith.dequantize(q, scale, zero_point)


# -- typical slips ---------------------------------------------------------------------------------
def to_int8_no_zero_point(x, scale, zero_point):
    return np.clip(arith.round_half_away(np.asarray(x) / scale), -128, 127).astype(np.int8)


def to_int8_round_half_even(x, scale, zero_point):
    return np.clip(np.round(np.asarray(x) / scale) + zero_point, -128, 127).astype(np.int8)


def to_int8_wraps(x, scale, zero_point):
    return (
        (arith.round_half_away(np.asarray(x) / scale) + zero_point).astype(np.int64).astype(np.int8)
    )


def choose_without_zero(lo, hi):
    scale = (hi - lo) / 255
    return scale, round(-128 - lo / scale)


def choose_over_256(lo, hi):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 256
    return scale, round(-128 - lo / scale)


def choose_uint8_zero_point(lo, hi):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255
    return scale, round(-lo / scale)


def fake_quant_returns_integers(x, scale, zero_point):
    return to_int8(x, scale, zero_point)


def fake_quant_without_clipping(x, scale, zero_point):
    return arith.round_half_away(np.asarray(x) / scale) * scale


SOLUTIONS = {
    "check_to_int8": to_int8,
    "check_scale_zero_point": choose_scale_zero_point,
    "check_fake_quant": fake_quant,
}
MISTAKES = {
    "check_to_int8": [to_int8_no_zero_point, to_int8_round_half_even, to_int8_wraps],
    "check_scale_zero_point": [choose_without_zero, choose_over_256, choose_uint8_zero_point],
    "check_fake_quant": [fake_quant_returns_integers, fake_quant_without_clipping],
}
