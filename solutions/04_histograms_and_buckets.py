"""Solutions to the checked exercises of notebook 04 (histograms and buckets), with the slips the
checks name.

Hand this out after the session. `per_channel_scales` is the converter's rule for int8 weights
(qlab.analysis.grid.weights), `levels_used` counts what a histogram over the grid shows
(qlab.analysis.buckets.used_levels), and `rounding_and_clipping` is qlab.analysis.buckets.split.
"""

import numpy as np

from qlab import arith


def per_channel_scales(w):
    """One scale per output channel (axis 0 of the file's layout): its largest |w| on level 127."""
    w = np.asarray(w, np.float64)
    return np.abs(w.reshape(len(w), -1)).max(axis=1) / 127


def levels_used(x, scale, zero_point):
    """How many of the int8 levels -128..127 the values land on."""
    q = np.clip(arith.round_half_away(np.asarray(x, np.float64) / scale) + zero_point, -128, 127)
    return int(np.unique(q).size)


def rounding_and_clipping(x, g):
    """Mean squared rounding and clipping errors of `x` on grid `g` (real units); they add up."""
    x = np.asarray(x, np.float64)
    clipped = g.clip(x)
    clipping = x - clipped
    rounding = clipped - g.round_trip(x)
    return float(np.mean(rounding**2)), float(np.mean(clipping**2))


# -- typical slips ---------------------------------------------------------------------------------
def per_channel_scales_over_128(w):
    return np.abs(np.asarray(w).reshape(len(w), -1)).max(axis=1) / 128


def per_channel_scales_last_axis(w):
    w = np.asarray(w)
    return np.abs(w).max(axis=tuple(range(w.ndim - 1))) / 127


def per_tensor_scale(w):
    return np.abs(w).max() / 127


def per_channel_scales_max_not_abs(w):
    return np.asarray(w).reshape(len(w), -1).max(axis=1) / 127


def levels_used_counts_values(x, scale, zero_point):
    return np.unique(x).size


def levels_used_no_clip(x, scale, zero_point):
    return np.unique(np.round(np.asarray(x) / scale + zero_point)).size


def rounding_includes_clipping(x, g):
    total = np.asarray(x) - g.round_trip(x)
    clipping = np.asarray(x) - g.clip(x)
    return float(np.mean(total**2)), float(np.mean(clipping**2))


def rounding_and_clipping_rms(x, g):
    rounding, clipping = rounding_and_clipping(x, g)
    return float(np.sqrt(rounding)), float(np.sqrt(clipping))


SOLUTIONS = {
    "check_per_channel_scales": per_channel_scales,
    "check_levels_used": levels_used,
    "check_error_split": rounding_and_clipping,
}
MISTAKES = {
    "check_per_channel_scales": [
        per_channel_scales_over_128,
        per_channel_scales_last_axis,
        per_tensor_scale,
        per_channel_scales_max_not_abs,
    ],
    "check_levels_used": [levels_used_counts_values, levels_used_no_clip],
    "check_error_split": [rounding_includes_clipping, rounding_and_clipping_rms],
}
