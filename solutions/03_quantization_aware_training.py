"""Solutions to the checked exercises of notebook 03 (quantization-aware training), with the slips
the checks name.

Hand this out after the session. `fake_quant_min_max` is what TensorFlow's FakeQuantWithMinMaxVars
does in the forward pass of a QAT model (qlab.analysis.fake_quant.nudge holds the same rule);
`kernel_ranges` is the range tfmot's weight quantizer gives a convolution's kernel
(qlab.analysis.grid.weights, axis=-1).
"""

import numpy as np

from qlab import arith


def fake_quant_min_max(x, min_value, max_value, bits=8):
    """Quantize then dequantize between min and max, as TensorFlow's fake-quant op.

    The op first nudges the range so that 0.0 is exactly a level: the zero point is rounded to an
    integer and the range moves with it. Then it clips, rounds to the nearest level and scales back.
    """
    top = 2**bits - 1
    scale = (max_value - min_value) / top
    zero_point = np.clip(arith.round_half_away(-min_value / scale), 0, top)
    low, high = -zero_point * scale, (top - zero_point) * scale
    return arith.round_half_away(np.clip(np.asarray(x, np.float64), low, high) / scale) * scale


def kernel_ranges(kernel):
    """tfmot's range for each output channel of a Keras conv kernel (kh, kw, in, out): ±max|w|."""
    m = np.abs(np.asarray(kernel)).max(axis=tuple(range(np.ndim(kernel) - 1)))
    return -m, m


# -- typical slips ---------------------------------------------------------------------------------
def fake_quant_not_nudged(x, min_value, max_value, bits=8):
    scale = (max_value - min_value) / (2**bits - 1)
    return min_value + np.round((np.clip(x, min_value, max_value) - min_value) / scale) * scale


def fake_quant_not_clipped(x, min_value, max_value, bits=8):
    top = 2**bits - 1
    scale = (max_value - min_value) / top
    zero_point = np.clip(np.round(-min_value / scale), 0, top)
    return (np.round(np.asarray(x) / scale + zero_point) - zero_point) * scale


def fake_quant_over_256(x, min_value, max_value, bits=8):
    steps = 2**bits
    scale = (max_value - min_value) / steps
    zero_point = np.clip(np.round(-min_value / scale), 0, steps)
    return np.round(np.clip(x, -zero_point * scale, (steps - zero_point) * scale) / scale) * scale


def kernel_ranges_min_max(kernel):
    axes = tuple(range(np.ndim(kernel) - 1))
    return np.min(kernel, axis=axes), np.max(kernel, axis=axes)


def kernel_ranges_first_axis(kernel):
    m = np.abs(kernel).max(axis=(1, 2, 3))
    return -m, m


def kernel_ranges_per_tensor(kernel):
    m = np.abs(kernel).max()
    return -m, m


SOLUTIONS = {
    "check_fake_quant_min_max": fake_quant_min_max,
    "check_kernel_ranges": kernel_ranges,
}
MISTAKES = {
    "check_fake_quant_min_max": [
        fake_quant_not_nudged,
        fake_quant_not_clipped,
        fake_quant_over_256,
    ],
    "check_kernel_ranges": [
        kernel_ranges_min_max,
        kernel_ranges_first_axis,
        kernel_ranges_per_tensor,
    ],
}
