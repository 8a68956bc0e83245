"""The float computation each op of a quantized .tflite approximates, in NumPy.

The integer engine's float shortcut (dequantize, float math, quantize) and the local view of
per-layer error (`qlab.analysis.per_layer`) both compute an op in float with `compute`. Each
rule follows the op's TFLite reference kernel (tflite/kernels/internal/reference/*.h); the ops
are those the zoo's models convert to.
"""

from __future__ import annotations

import numpy as np

from qlab.intmath.integer_ops import windows
from qlab.tflite.flatbuffer import PADDINGS

ACTIVATION_BOUNDS = {
    "NONE": (None, None),
    "RELU": (0, None),
    "RELU6": (0, 6),
    "RELU_N1_TO_1": (-1, 1),
}
"""Each fused activation as (low, high) real bounds; None means unbounded on that side."""
FLOAT_OPS = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "HARD_SWISH",
    "LOGISTIC",
    "MAX_POOL_2D",
    "MEAN",
    "MUL",
    "PAD",
    "RELU",
    "RELU6",
    "RESHAPE",
    "SOFTMAX",
    "SQUEEZE",
    "STRIDED_SLICE",
    "SUB",
    "TANH",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
)
"""The ops `compute` computes."""


def compute(op, inputs: list, output_shape=None) -> np.ndarray:
    """One op of a .tflite (a qlab.tflite.flatbuffer.Op) computed in float, its fused activation applied.

    Args:
        op: the op; its options give strides, paddings, axes, beta, ...
        inputs: one entry per op input, in order: real values of the activations (batch axis
            first), the constants as stored (weights (out, kh, kw, in), biases, axes, shapes,
            begin/end/strides), None for an absent optional input.
        output_shape: the stored output shape (its batch is replaced by the input's).

    Returns:
        array of the first input's float dtype, (n,) + output_shape[1:] (the arithmetic stays in
        that dtype, so float32 inputs give float32 math).

    Raises:
        NotImplementedError: an op outside `FLOAT_OPS`, or options a rule does not cover (named).
        KeyError: a fused activation outside `ACTIVATION_BOUNDS`.
    """
    name, x = op.name, inputs[0]
    if name not in FLOAT_OPS:
        raise NotImplementedError(
            f"qlab has no float version of op {name}; it has: {', '.join(FLOAT_OPS)}"
        )
    n = len(x)
    shape = (n, *output_shape[1:]) if output_shape is not None else None
    if name in ("RESHAPE", "SQUEEZE"):
        return x.reshape(shape)
    if name == "SOFTMAX":
        e = np.exp(float(op.option("beta", 1.0)) * (x - x.max(axis=-1, keepdims=True)))
        return e / e.sum(axis=-1, keepdims=True)
    if name in ("LOGISTIC", "TANH", "RELU", "RELU6", "HARD_SWISH"):
        return _elementwise(name, x)
    if name == "CONV_2D":
        w = inputs[1]
        patches = windows(
            x, w.shape[1:3], _strides(op), _dilations(op), PADDINGS[op.option("padding")]
        )
        y = patches.reshape(*patches.shape[:3], -1) @ w.reshape(len(w), -1).T.astype(x.dtype)
    elif name == "DEPTHWISE_CONV_2D":
        w = inputs[1]  # (1, kh, kw, channels × depth_multiplier)
        multiplier = int(op.option("depthMultiplier", 1) or 1)
        patches = windows(
            np.repeat(x, multiplier, axis=-1),
            w.shape[1:3],
            _strides(op),
            _dilations(op),
            PADDINGS[op.option("padding")],
        )
        y = np.einsum("nhwkc,kc->nhwc", patches, w.reshape(-1, w.shape[-1]).astype(x.dtype))
    elif name == "FULLY_CONNECTED":
        w = inputs[1]
        y = (x.reshape(-1, w.shape[1]) @ w.T.astype(x.dtype)).reshape(shape)
    elif name in ("ADD", "SUB", "MUL"):
        a, b = x, np.asarray(inputs[1], x.dtype)
        y = a + b if name == "ADD" else a - b if name == "SUB" else a * b
    elif name == "CONCATENATION":
        y = np.concatenate([np.asarray(i, x.dtype) for i in inputs], axis=int(op.option("axis")))
    elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        y = _pool(op, x)
    elif name == "MEAN":
        axes = tuple(int(a) % x.ndim for a in np.ravel(inputs[1]))
        y = x.mean(axis=axes, keepdims=bool(op.option("keepDims", False)), dtype=x.dtype)
    elif name == "PAD":
        y = np.pad(x, np.asarray(inputs[1], np.int64))
    elif name == "STRIDED_SLICE":
        y = _strided_slice(op, x, inputs[1:4])
    else:
        return _lstm(op, x, inputs)  # its fused activation (tanh) acts inside the cell
    if (
        len(inputs) > 2
        and inputs[2] is not None
        and name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    ):
        y = y + inputs[2].astype(x.dtype)
    low, high = ACTIVATION_BOUNDS[op.activation]
    return y if low is None else np.clip(y, low, high)


def _strides(op) -> tuple[int, int]:
    return int(op.option("strideH", 1)), int(op.option("strideW", 1))


def _dilations(op) -> tuple[int, int]:
    return int(op.option("dilationHFactor", 1) or 1), int(op.option("dilationWFactor", 1) or 1)


def _elementwise(name: str, x: np.ndarray) -> np.ndarray:
    if name == "LOGISTIC":
        return 1 / (1 + np.exp(-x))
    if name == "TANH":
        return np.tanh(x)
    if name == "RELU":
        return np.maximum(x, 0)
    if name == "RELU6":
        return np.clip(x, 0, 6)
    return x * np.clip(x + 3, 0, 6) / 6  # HARD_SWISH: x · relu6(x + 3) / 6


def _pool(op, x: np.ndarray) -> np.ndarray:
    """Max or average pooling; padded positions count for neither (reference pooling.h)."""
    kernel = (int(op.option("filterHeight")), int(op.option("filterWidth")))
    padding = PADDINGS[op.option("padding")]
    if op.name == "MAX_POOL_2D":
        return (
            windows(x, kernel, _strides(op), padding=padding, pad_value=-np.inf)
            .max(axis=3)
            .astype(x.dtype)
        )
    total = windows(x, kernel, _strides(op), padding=padding).sum(axis=3)
    count = windows(np.ones_like(x[:1, ..., :1]), kernel, _strides(op), padding=padding).sum(axis=3)
    return (total / count).astype(x.dtype)


def _strided_slice(op, x: np.ndarray, constants) -> np.ndarray:
    """x[begin:end:strides] per axis with the begin, end and shrink-axis masks (strided_slice.h);
    the batch axis (0) is kept whole."""
    begin, end, strides = (np.ravel(c).astype(np.int64) for c in constants)
    if int(op.option("ellipsisMask", 0) or 0) or int(op.option("newAxisMask", 0) or 0):
        raise NotImplementedError(
            "STRIDED_SLICE with an ellipsis or new-axis mask has no float version in qlab"
        )
    index = []
    for axis in range(len(begin)):
        if axis == 0:
            index.append(slice(None))
        elif int(op.option("shrinkAxisMask", 0) or 0) >> axis & 1:
            index.append(int(begin[axis]))
        else:
            start = None if int(op.option("beginMask", 0) or 0) >> axis & 1 else int(begin[axis])
            stop = None if int(op.option("endMask", 0) or 0) >> axis & 1 else int(end[axis])
            index.append(slice(start, stop, int(strides[axis])))
    return x[tuple(index)]


def _lstm(op, x: np.ndarray, inputs: list) -> np.ndarray:
    """A Keras-style LSTM over the time axis, from zero state: its output sequence."""
    return lstm_steps(op, x, inputs)[0]


def lstm_steps(
    op, x: np.ndarray, inputs: list, carry: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """An LSTM over the time axis (reference lstm_eval.cc): gates i, f, c, o from the input and
    recurrent weights and the gate biases, the cell clipped to `cellClip` if set; no peephole,
    projection or layer norm.

    Args:
        op: the UNIDIRECTIONAL_SEQUENCE_LSTM op (batch-major).
        x: (n, time steps, features) real inputs.
        inputs: the op's inputs as `compute` takes them (weights 1..8, biases 12..15).
        carry: False starts every sample from zero state (as `qlab.tflite.runtime` runs a model);
            True runs the samples one after another, each starting from the state the previous
            one left, as the converter's calibration does.

    Returns:
        (outputs (n, steps, units), cell states (n, steps, units)), in x's dtype.

    Raises:
        NotImplementedError: peephole, projection or layer-norm inputs, a time-major op, or a cell
            activation other than tanh.
    """
    if any(inputs[i] is not None for i in (9, 10, 11, 16, 17, *range(20, min(24, len(inputs))))):
        raise NotImplementedError(
            "an LSTM with peephole, projection or layer norm has no float version in qlab"
        )
    if op.option("timeMajor", False) or op.activation != "TANH":
        raise NotImplementedError(
            "a time-major LSTM, or one whose cell activation is not tanh, has no float "
            "version in qlab"
        )
    dtype = x.dtype
    wx = [
        np.asarray(inputs[i], dtype) for i in (1, 2, 3, 4)
    ]  # input-to-{input, forget, cell, output}
    wh = [np.asarray(inputs[i], dtype) for i in (5, 6, 7, 8)]
    b = [np.asarray(inputs[i], dtype) for i in (12, 13, 14, 15)]
    clip = float(op.option("cellClip", 0.0) or 0.0)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    batches = [x[i : i + 1] for i in range(len(x))] if carry else [x]
    units = wh[0].shape[0]
    h, c = np.zeros((len(batches[0]), units), dtype), np.zeros((len(batches[0]), units), dtype)
    outputs, cells = [], []
    for batch in batches:
        for t in range(batch.shape[1]):
            gate = [batch[:, t] @ wx[k].T + h @ wh[k].T + b[k] for k in range(4)]
            c = sigmoid(gate[1]) * c + sigmoid(gate[0]) * np.tanh(gate[2])
            c = np.clip(c, -clip, clip) if clip > 0 else c
            h = sigmoid(gate[3]) * np.tanh(c)
            outputs.append(h)
            cells.append(c)
    shape = (
        len(x),
        x.shape[1],
        units,
    )  # one batch of n, or n batches of 1 in sequence: the same order
    return np.stack(outputs, axis=1).reshape(shape), np.stack(cells, axis=1).reshape(shape)


def float_op(op, x: np.ndarray, weights=None, bias=None, output_shape=None) -> np.ndarray:
    """`compute` for an op with one activation input and optional weights and bias.

    Returns:
        as `compute`.

    Raises:
        as `compute`.
    """
    return compute(op, [x, weights, bias] if weights is not None else [x], output_shape)
