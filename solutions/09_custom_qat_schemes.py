"""Solutions to the checked exercises of notebook 09 (custom QAT schemes), with the slips the checks
name.

Hand this out after the session. `weight_grid` is the grid tfmot's n-bit weight quantizer gives a
conv kernel (symmetric, narrow range, one scale per output channel: what
qlab.analysis.fake_quant.nudge computes from the op's min and max), and `percentile_range` is
qlab.training.schemes.PercentileQuantizer.range_of.
"""

import numpy as np


def weight_grid(kernel, bits):
    """(scale per output channel, zero point) of tfmot's narrow symmetric `bits`-bit weight grid."""
    w = np.asarray(kernel, np.float64)
    m = np.abs(w.reshape(-1, w.shape[-1])).max(axis=0)  # output channels are the last axis in Keras
    return m / (2 ** (bits - 1) - 1), np.zeros(w.shape[-1], np.int64)


def percentile_range(values, percentile):
    """The (100 - p)th and pth percentiles by nearest rank, widened to include 0."""
    low, high = np.percentile(
        np.asarray(values).ravel(), [100 - percentile, percentile], method="nearest"
    )
    return min(float(low), 0.0), max(float(high), 0.0)


# -- typical slips ---------------------------------------------------------------------------------
def weight_grid_not_narrow(kernel, bits):
    w = np.asarray(kernel, np.float64)
    return np.abs(w.reshape(-1, w.shape[-1])).max(axis=0) / 2 ** (bits - 1), np.zeros(
        w.shape[-1], np.int64
    )


def weight_grid_per_tensor(kernel, bits):
    return np.abs(kernel).max() / (2 ** (bits - 1) - 1), 0


def weight_grid_first_axis(kernel, bits):
    w = np.asarray(kernel, np.float64)
    return np.abs(w.reshape(len(w), -1)).max(axis=1) / (2 ** (bits - 1) - 1), np.zeros(
        len(w), np.int64
    )


def weight_grid_unsigned_zero_point(kernel, bits):
    scale, _ = weight_grid(kernel, bits)
    return scale, np.full(scale.shape, 2 ** (bits - 1))


def percentile_range_no_zero(values, percentile):
    low, high = np.percentile(
        np.asarray(values).ravel(), [100 - percentile, percentile], method="nearest"
    )
    return float(low), float(high)


def percentile_range_interpolated(values, percentile):
    low, high = np.percentile(np.asarray(values).ravel(), [100 - percentile, percentile])
    return min(float(low), 0.0), max(float(high), 0.0)


SOLUTIONS = {"check_weight_grid": weight_grid, "check_percentile_quantizer_range": percentile_range}
MISTAKES = {
    "check_weight_grid": [
        weight_grid_not_narrow,
        weight_grid_per_tensor,
        weight_grid_first_axis,
        weight_grid_unsigned_zero_point,
    ],
    "check_percentile_quantizer_range": [percentile_range_no_zero, percentile_range_interpolated],
}
