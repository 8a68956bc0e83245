"""The float computation each op of a quantized .tflite approximates, in NumPy.

The integer engine's float shortcut (dequantize, float math, quantize) and the local view of
per-layer error (`qlab.analysis.layer_errors`) both compute an op in float with these.
"""

from __future__ import annotations

import numpy as np

from qlab.intmath.integer_ops import im2col
from qlab.tflite_file import PADDINGS

ACTIVATION_BOUNDS = {"NONE": (None, None), "RELU": (0, None), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}
"""Each fused activation as (low, high) real bounds; None means unbounded on that side."""
FLOAT_OPS = ("CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX")
"""The ops `float_op` computes."""


def float_op(op, x: np.ndarray, weights=None, bias=None, output_shape=None) -> np.ndarray:
    """One op of a .tflite (a qlab.tflite_file.Op) computed in float on real values `x`.

    `weights` are (out, kh, kw, in) for CONV_2D and (out, in) for FULLY_CONNECTED; the fused
    activation is applied. The arithmetic stays in x's dtype. SOFTMAX is exp(beta·(x − max)),
    normalized over the last axis.

    Args:
        op: the op; its options give stride, dilation, padding and beta.
        x: real input values, a batch.
        weights, bias: real weights and bias of CONV_2D or FULLY_CONNECTED (bias may be None).
        output_shape: the stored output shape, for RESHAPE and FULLY_CONNECTED (its batch is
            replaced by len(x)).

    Returns:
        array of x's dtype: (n, out_h, out_w, out_channels) for CONV_2D, (n,) +
        output_shape[1:] for FULLY_CONNECTED and RESHAPE, the shape of `x` for SOFTMAX.

    Raises:
        NotImplementedError: an op outside `FLOAT_OPS`, or a conv padding other than SAME or VALID.
        KeyError: a fused activation outside `ACTIVATION_BOUNDS`.
    """
    name = op.name
    if name == "RESHAPE":
        return x.reshape(len(x), *output_shape[1:])
    if name == "SOFTMAX":
        beta = float(op.option("beta", 1.0))
        e = np.exp(beta * (x - x.max(axis=-1, keepdims=True)))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "CONV_2D":
        cols, shape = im2col(x, weights.shape[1:3], (op.option("strideH"), op.option("strideW")),
                             (op.option("dilationHFactor"), op.option("dilationWFactor")),
                             PADDINGS[op.option("padding")])
        y = (cols @ weights.reshape(len(weights), -1).T).reshape(*shape, len(weights))
    elif name == "FULLY_CONNECTED":
        y = (x.reshape(-1, weights.shape[1]) @ weights.T).reshape(len(x), *output_shape[1:])
    else:
        raise NotImplementedError(f"qlab has no float version of op {name}; it has: {', '.join(FLOAT_OPS)}")
    y = y + (0 if bias is None else bias)
    low, high = ACTIVATION_BOUNDS[op.activation]
    return y if low is None else np.clip(y, low, high)
