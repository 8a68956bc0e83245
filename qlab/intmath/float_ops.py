"""The float computation each op of a quantized .tflite approximates, in NumPy: `compute`, used
by the engine's float shortcut and by `qlab.analysis.per_layer`'s local view. Each rule follows
the op's TFLite reference kernel (tflite/kernels/internal/reference/*.h)."""

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
    """One op of a .tflite (a `qlab.tflite.flatbuffer.Op`) in float, its fused activation applied.

    `inputs`: per op input, the activations' real values (batch axis first), the constants as
    stored, or None for an absent optional input. `output_shape`: the stored one (its batch becomes
    the input's).

    Returns an array of the first input's float dtype (the math stays in it), (n,) +
    output_shape[1:].

    Raises:
        NotImplementedError: an op outside `FLOAT_OPS`, or options a rule does not cover (named).
        KeyError: a fused activation outside `ACTIVATION_BOUNDS`."""
    name, x = op.name, inputs[0]
    if name not in FLOAT_OPS:
        raise NotImplementedError(
            f"qlab has no float version of op {name}; it has: {', '.join(FLOAT_OPS)}"
        )
    n = len(x)
    shape = (n, *output_shape[1:]) if output_shape is not None else None
    if name in _WHOLE:  # no fused activation after these (LSTM: its tanh acts inside the cell)
        return _WHOLE[name](op, x, inputs, shape)
    y = _FUSED[name](op, x, inputs, shape)
    low, high = ACTIVATION_BOUNDS[op.activation]
    return y if low is None else np.clip(y, low, high)


def _with_bias(y: np.ndarray, inputs: list, dtype) -> np.ndarray:
    if len(inputs) > 2 and inputs[2] is not None:
        return y + inputs[2].astype(dtype)
    return y


def _conv(op, x, inputs, shape):
    w = inputs[1]
    patches = windows(x, w.shape[1:3], _strides(op), _dilations(op), PADDINGS[op.option("padding")])
    y = patches.reshape(*patches.shape[:3], -1) @ w.reshape(len(w), -1).T.astype(x.dtype)
    return _with_bias(y, inputs, x.dtype)


def _depthwise_conv(op, x, inputs, shape):
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
    return _with_bias(y, inputs, x.dtype)


def _fully_connected(op, x, inputs, shape):
    w = inputs[1]
    y = (x.reshape(-1, w.shape[1]) @ w.T.astype(x.dtype)).reshape(shape)
    return _with_bias(y, inputs, x.dtype)


def _binary(op, x, inputs, shape):
    a, b = x, np.asarray(inputs[1], x.dtype)
    return a + b if op.name == "ADD" else a - b if op.name == "SUB" else a * b


def _softmax(op, x, inputs, shape):
    e = np.exp(float(op.option("beta", 1.0)) * (x - x.max(axis=-1, keepdims=True)))
    return e / e.sum(axis=-1, keepdims=True)


def _mean(op, x, inputs, shape):
    axes = tuple(int(a) % x.ndim for a in np.ravel(inputs[1]))
    return x.mean(axis=axes, keepdims=bool(op.option("keepDims", False)), dtype=x.dtype)


# the ops whose result `compute` returns as it is, and those it puts through the fused activation
_WHOLE = {
    "RESHAPE": lambda op, x, inputs, shape: x.reshape(shape),
    "SQUEEZE": lambda op, x, inputs, shape: x.reshape(shape),
    "SOFTMAX": _softmax,
    **{
        name: lambda op, x, inputs, shape: _elementwise(op.name, x)
        for name in ("LOGISTIC", "TANH", "RELU", "RELU6", "HARD_SWISH")
    },
    "UNIDIRECTIONAL_SEQUENCE_LSTM": lambda op, x, inputs, shape: _lstm(op, x, inputs),
}
_FUSED = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise_conv,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _binary,
    "SUB": _binary,
    "MUL": _binary,
    "CONCATENATION": lambda op, x, inputs, shape: np.concatenate(
        [np.asarray(i, x.dtype) for i in inputs], axis=int(op.option("axis"))
    ),
    "MAX_POOL_2D": lambda op, x, inputs, shape: _pool(op, x),
    "AVERAGE_POOL_2D": lambda op, x, inputs, shape: _pool(op, x),
    "MEAN": _mean,
    "PAD": lambda op, x, inputs, shape: np.pad(x, np.asarray(inputs[1], np.int64)),
    "STRIDED_SLICE": lambda op, x, inputs, shape: _strided_slice(op, x, inputs[1:4]),
}


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
    """An LSTM over the time axis (reference lstm_eval.cc): gates i, f, c, o, the cell clipped to
    `cellClip` if set; no peephole, projection or layer norm. `inputs` as `compute` takes them
    (weights 1..8, biases 12..15). `carry` runs the samples one after another, each from the state
    the previous one left (as the converter's calibration), instead of each from zero state.

    Returns (outputs, cell states), each (n, steps, units) in x's dtype. Raises
    NotImplementedError for peephole, projection or layer-norm inputs, a time-major op, or a cell
    activation other than tanh."""
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
    """Returns `compute` for an op with one activation input and optional weights and bias.

    Raises what `compute` raises."""
    return compute(op, [x, weights, bias] if weights is not None else [x], output_shape)
