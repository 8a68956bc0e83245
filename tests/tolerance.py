"""The tests' numeric tolerances, each derived from how the two sides of a comparison compute.

Two float32 computations of the same quantity differ when they sum in another order (thread
count, SIMD width, kernel choice: XNNPACK, LiteRT's builtin or reference kernels, TensorFlow with or
without oneDNN, the converter's calibration interpreter). Rounding analysis bounds that difference;
it does not depend on the machine, so neither do these tolerances.

The rule used throughout (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
Lemma 3.1 and §3.1): a sum of n products computed in float32 in *any* order is within
gamma(n) * sum(|w_i x_i|) of the exact sum, gamma(n) = n u / (1 - n u), u = 2**-24. Two such
computations differ by at most twice that. Through a network the terms add up along the path from
the input: a tensor's value went through N = the sum of the reduction lengths of the ops on its
longest path (`path_terms`), so two runtimes' values of it differ by at most 2 gamma(N) relative
to the sum of magnitudes. A range (min, max over the calibration images) inherits that bound,
since |max(a) - max(b)| <= max|a - b|; the extremes that set a range are sums whose terms mostly
share a sign, so their magnitude sum is their value (condition number near 1).
That is an assumption, not a worst case: carried rigorously through |W| layer by layer
(`keras_bound`), the bound at the digits CNN's calibration maximum grows from 1.2e-6 (conv1) to
0.15 (the logits) relative, which no test could fail. Observed differences are near sqrt(N) u
(rounding errors are not all of one sign), about 1e-7, while the path rule allows 1e-6 to 1e-4; a
wrong grid rule (255 against 256 levels, a range one image short) moves a scale by 4e-3 or more.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from qlab.analysis import grid
from qlab.intmath import float_ops
from qlab.tflite import flatbuffer
from qlab.vocabulary import SAME_GRID_OPS, SHARED_GRID_OPS

U32 = 2.0**-24
"""float32 unit roundoff: one float32 operation's relative rounding error is at most this."""
U64 = 2.0**-53
"""float64 unit roundoff, for comparisons whose both sides compute in float64 (NumPy)."""


def gamma(n: int, u: float = U32) -> float:
    """Higham's gamma_n: the relative error bound of n float operations chained (n u < 1)."""
    assert n * u < 1, n
    return n * u / (1 - n * u)


def reordered(n: int, u: float = U32) -> float:
    """Relative bound between two evaluations of the same n-term sum of products, each in any
    order: each is within gamma(n) of the exact value (n - 1 additions and one product per term)."""
    return 2 * gamma(max(int(n), 1), u)


WEIGHT_SCALE_RTOL = 4 * U32
"""A weight's scale: the converter divides max |w| by 127 (or the range by 255) in float32 and
stores it in float32; qlab computes in float64 and rounds to float32 once. At most two roundings on
one side and one on the other, within 4u of each other whatever the machine (max and min are
exact)."""

SCALE_ARITHMETIC = 4 * U32
"""What computing a scale from a range adds on top of the range's own error: the subtraction,
the division and the float32 storage on the converter's side, one rounding on qlab's."""


TRANSCENDENTAL_ULPS = 16
"""exp, tanh and the logistic function are approximated by each kernel set (XNNPACK's polynomial
microkernels, Eigen's, the reference kernels' libm), each within a few float32 ulps of the true
value by its authors' own tests. No kernel set publishes one bound for all of them: 16 ulps is an
allowance above those few, not a derived figure; two kernel sets are then within 2 x 16 ulps."""
TRANSCENDENTAL = TRANSCENDENTAL_ULPS * U32
"""`TRANSCENDENTAL_ULPS` as a relative error."""


# -- how many float32 terms a tensor's value went through ----------------------------------------
def _conv_terms(model, op) -> int:  # filter (out, kh, kw, in): one output sums kh*kw*in products
    return int(np.prod(model.tensors[op.inputs[1]].shape[1:])) + 1  # + the bias


def _depthwise_terms(model, op) -> int:  # filter (1, kh, kw, channels)
    shape = model.tensors[op.inputs[1]].shape
    return int(shape[1] * shape[2]) + 1


def _fully_connected_terms(model, op) -> int:  # weights (units, depth)
    return int(model.tensors[op.inputs[1]].shape[1]) + 1


def _lstm_terms(model, op) -> int:
    """Each step's gates sum features + units products and a bias, the cell state adds two products
    to the last step's, and three sigmoids and two tanh each count as `TRANSCENDENTAL_ULPS`
    roundings: over `steps` steps the last output went through all of them."""
    return int(model.tensors[op.inputs[0]].shape[1] * _lstm_step_terms(model, op))


def _lstm_step_terms(model, op) -> int:
    features = model.tensors[op.inputs[0]].shape[2]
    units = model.tensors[op.inputs[5]].shape[1]  # recurrent_to_input weights: (units, units)
    return int(features + units + 1 + 2 + 5 * TRANSCENDENTAL_ULPS)


def _reduced(model, op) -> int:  # MEAN, SUM: every element of the reduced axes
    x, out = model.tensors[op.inputs[0]].shape, model.tensors[op.outputs[0]].shape
    return max(int(np.prod(x)) // max(int(np.prod(out)), 1), 1)


def _pooled(model, op) -> int:
    return int(op.option("filterHeight", 1) * op.option("filterWidth", 1))


def _last_axis(model, op) -> int:  # SOFTMAX: exponentials summed over the classes, one division
    return int(model.tensors[op.inputs[0]].shape[-1]) + 1 + TRANSCENDENTAL_ULPS


TERMS = {
    "CONV_2D": _conv_terms,
    "DEPTHWISE_CONV_2D": _depthwise_terms,
    "FULLY_CONNECTED": _fully_connected_terms,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm_terms,
    "MEAN": _reduced,
    "SUM": _reduced,
    "AVERAGE_POOL_2D": _pooled,
    "SOFTMAX": _last_axis,
    **dict.fromkeys(("ADD", "SUB", "MUL", "HARD_SWISH"), lambda m, o: 1),
    **dict.fromkeys(("LOGISTIC", "TANH"), lambda m, o: 1 + TRANSCENDENTAL_ULPS),
    **dict.fromkeys(
        (
            "RESHAPE",
            "SQUEEZE",
            "STRIDED_SLICE",
            "CONCATENATION",
            "MAX_POOL_2D",
            "REDUCE_MAX",
            "RELU",
            "RELU6",
            "PAD",
            "QUANTIZE",
            "DEQUANTIZE",
            "SHAPE",
            "PACK",
            "TRANSPOSE",
            "GATHER",
        ),
        lambda m, o: 0,
    ),
}
"""Float32 roundings per output element of each op (its reduction length): a per-op table, so a
new op in a test model fails here by name instead of getting a guessed tolerance."""


def path_terms(tflite: bytes) -> dict[int, int]:
    """Tensor index -> N, the float32 terms summed on the longest path from the model's inputs to
    that tensor (constants and inputs: 0). Ops are in execution order in a .tflite."""
    model = flatbuffer.read(tflite)
    terms = dict.fromkeys(model.inputs, 0)
    for op in model.ops:
        if op.name not in TERMS:
            raise KeyError(
                f"tests/tolerance.py has no rounding count for {op.name}: add it to TERMS"
            )
        before = max((terms.get(i, 0) for i in op.inputs if i >= 0), default=0)
        for out in op.outputs:
            terms[out] = before + TERMS[op.name](model, op)
    return terms


def activation_scale_rtol(terms: int) -> float:
    """An activation's scale fitted by qlab on LiteRT against the converter's, fitted on
    TensorFlow's own TFLite interpreter: the range's bound after `terms` roundings on each side,
    plus the scale's own arithmetic."""
    return reordered(terms) + SCALE_ARITHMETIC


def grid_scale_rtol(tensor, terms: dict[int, int]) -> float:
    """The tolerance for the scale of one quantized tensor of a deployed file: a weight's
    (`WEIGHT_SCALE_RTOL`), a bias's (the input's activation bound plus the weight's: bias scale =
    input scale x weight scale, one more rounding), or an activation's."""
    if tensor.data is None:
        return activation_scale_rtol(terms.get(tensor.index, 0))
    if tensor.type in ("INT32", "INT64"):  # a bias: the largest input bound in the model covers it
        return activation_scale_rtol(max(terms.values())) + WEIGHT_SCALE_RTOL + U32
    return WEIGHT_SCALE_RTOL


def assert_grids_equal(predicted: dict, tflite: bytes) -> None:
    """Every quantized tensor of `tflite` has a predicted grid (tensor index -> Grid), with the
    file's bits, the file's scale within `grid_scale_rtol`, and the file's zero point. A zero point
    may be one level off only where the scale moved too: rounding the unrounded zero point
    (qmin - low / scale) flips only when the range it came from differs."""
    model = flatbuffer.read(tflite)
    quantized = [t for t in model.tensors if t.quantized]
    assert quantized and sorted(predicted) == sorted(t.index for t in quantized)
    terms = path_terms(tflite)
    for t in quantized:
        ours, theirs = predicted[t.index], grid.of_tensor(t)
        assert ours.scale.shape == theirs.scale.shape, t.name
        np.testing.assert_allclose(
            ours.scale, theirs.scale, rtol=grid_scale_rtol(t, terms), err_msg=t.name
        )
        moved = ours.scale != theirs.scale
        off = np.abs(ours.zero_point - theirs.zero_point)
        assert np.all((off == 0) | ((off == 1) & moved)), (
            t.name,
            ours.zero_point,
            theirs.zero_point,
        )
        assert ours.bits == theirs.bits and ours.signed == theirs.signed, t.name


def _magnitude(model, op) -> float:
    """The largest sum of |terms| among the op's outputs, from the deployed file: each output
    channel's L1 weight norm times the largest |input| its grid can hold, plus |bias|."""
    x = model.tensors[op.inputs[0]]
    reach = max(abs(float(v)) for v in (grid.of_tensor(x).low.max(), grid.of_tensor(x).high.max()))
    if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        out = model.tensors[op.outputs[0]]
        return max(reach, float(np.abs(grid.of_tensor(out).high).max())) if out.quantized else reach
    w = model.tensors[op.inputs[1]]
    weights = np.abs(w.dequantize(w.data, np.float64))
    channel = w.axis if w.axis is not None else (3 if op.name == "DEPTHWISE_CONV_2D" else 0)
    norms = np.moveaxis(weights, channel, 0).reshape(weights.shape[channel], -1).sum(axis=1)
    bias = 0.0
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = model.tensors[op.inputs[2]]
        bias = float(np.abs(b.dequantize(b.data, np.float64)).max())
    return float(norms.max()) * reach + bias


def local_bound(tflite: bytes, tensor_name: str) -> float:
    """How far two float32 evaluations of one op of the deployed `tflite` may differ on the same
    dequantized inputs, per output element, in real units: 2 gamma(K + 2) x the largest magnitude
    sum (K terms, one more rounding each for dequantizing the inputs and the result), plus the
    transcendental kernels' allowance for ops that evaluate one, plus one float32 dequantize of
    the output on each side."""
    model = flatbuffer.read(tflite)
    op = next(o for o in model.ops if model.tensors[o.outputs[0]].name == tensor_name)
    out = model.tensors[op.outputs[0]]
    reach = float(np.abs(np.concatenate([grid.of_tensor(out).low, grid.of_tensor(out).high])).max())
    bound = reordered(TERMS[op.name](model, op) + 2) * _magnitude(model, op) + 2 * U32 * reach
    if op.name in ("SOFTMAX", "LOGISTIC", "TANH"):
        bound += 2 * TRANSCENDENTAL * max(reach, 1.0)
    return bound


def assert_debugger_agrees(ours, theirs, tflite: bytes, samples: int) -> None:
    """qlab's local view (`ours`) against the QuantizationDebugger's table (`theirs`), row by row.

    Both quantize the same way (the same converter, calibration and integer kernels: equal scales,
    zero points and int8 outputs); they differ only in the float copy of each op, computed by
    TensorFlow's interpreter for the debugger and by qlab for the local view. With `d` that op's
    `local_bound` per element, and the metrics averaged per sample as the debugger does:
    |d mean_error|, |d max_abs_error|, |d stddev| <= d (a mean, a max and a standard deviation
    move by at most the largest move of their elements); |d mean_squared_error| <= d (2 rms + d)
    (|a^2 - b^2| = |a - b| |a + b|, then Cauchy-Schwarz and Jensen); rmse/scale moves by at most
    sqrt of that over the scale. On top, each side's float32 mean over the elements (`numpy_mean`).
    """
    assert list(ours["layer"]) == list(theirs["layer"])
    np.testing.assert_array_equal(ours["num_elements"], theirs["num_elements"])
    # the debugger's table passes through text: its scales round-trip float32, not float64
    np.testing.assert_array_equal(
        ours["scale"].to_numpy(np.float32), theirs["scale"].to_numpy(np.float32)
    )
    np.testing.assert_array_equal(
        ours["zero_point"].to_numpy(float), theirs["zero_point"].to_numpy(float)
    )
    d = np.array([local_bound(tflite, name) for name in ours["tensor"]])
    mse = theirs["mean_squared_error"].to_numpy(float)
    n = theirs["num_elements"].to_numpy(float) / samples
    summing = np.array([numpy_mean(int(k), U32) for k in n])
    big = theirs["max_abs_error"].to_numpy(float)
    mse_bound = d * (2 * np.sqrt(mse) + d) + 2 * summing * mse
    bounds = {
        "mean_error": d + 2 * summing * big,
        "max_abs_error": d + 2 * U32 * big,
        "stddev": d + 2 * summing * big,
        "mean_squared_error": mse_bound,
        "rmse/scale": np.sqrt(mse_bound) / theirs["scale"].to_numpy(float),
    }
    # For an op that keeps its input's grid the debugger reports no error beyond its own float32
    # noise: right where values only move (RESHAPE, MAX_POOL_2D, CONCATENATION); an int8
    # AVERAGE_POOL_2D rounds each mean, which qlab measures (under half a level) and the debugger
    # does not, so there its row is checked against zero instead of against qlab's.
    same_grid = ours["op"].isin(SAME_GRID_OPS + SHARED_GRID_OPS).to_numpy()
    averages = ours["op"].isin(("AVERAGE_POOL_2D",)).to_numpy()
    for column, bound in bounds.items():
        a, b = ours[column].to_numpy(float), theirs[column].to_numpy(float)
        a = np.where(averages, 0.0, a)
        assert np.all(np.abs(a - b) <= bound), (column, list(ours["layer"]), a, b, bound)
        assert np.all(np.abs(b[same_grid]) <= bound[same_grid] + 2 * d[same_grid]), (column, b)
    assert np.all(ours["rmse/scale"].to_numpy(float)[averages] <= 0.5)


def _unfused(op):
    """A copy of `op` without its fused activation: ReLU and ReLU6 are 1-Lipschitz, so they never
    widen a difference, but clipping the magnitude sum would understate it."""
    bare = copy.copy(op)
    if op.options is not None and hasattr(op.options, "fusedActivationFunction"):
        bare.options = copy.copy(op.options)
        bare.options.fusedActivationFunction = 0
    return bare


def _magnitudes(model, op, inputs, shape) -> np.ndarray:
    """The op's sum of |terms| per output element: the op itself on |inputs| in float64."""
    absolute = [None if i is None else np.abs(np.asarray(i, np.float64)) for i in inputs]
    if op.name == "SUB":
        op = copy.copy(op)
        op.name = "ADD"
    return float_ops.compute(_unfused(op), absolute, shape) * reordered(
        TERMS[op.name](model, op) + 1
    )


def _transcendental(
    model, op, inputs, shape
) -> float:  # outputs in [-1, 1]; TERMS counts the kernel's ulps
    return reordered(TERMS[op.name](model, op) + 1)


def _lstm_bound(model, op, inputs, shape) -> float:
    """Per step, each gate's pre-activation moves by at most reordered(K) x (|W| |x| + |U| |h| +
    |b|), |h| <= 1, then through 1-Lipschitz sigmoid and tanh and their kernels' allowance; summed
    over the steps. A worst case through the recurrence would multiply by the recurrent weights'
    norm at every step (useless: about 4^8 here); a trained LSTM's gates contract, so the steps'
    differences add rather than multiply."""
    steps = model.tensors[op.inputs[0]].shape[1]
    reach = float(np.abs(inputs[0]).max())
    rows = [np.abs(np.asarray(inputs[i], np.float64)).sum(axis=1) for i in range(1, 9)]
    pre = max(
        float((rows[g] * reach + rows[g + 4] + np.abs(inputs[12 + g])).max()) for g in range(4)
    )
    per_step = _lstm_step_terms(model, op) - 5 * TRANSCENDENTAL_ULPS  # the sums; the kernels' below
    return steps * (reordered(per_step) * pre + 2 * TRANSCENDENTAL * 5)


BOUNDS = {
    **dict.fromkeys(
        (
            "CONV_2D",
            "DEPTHWISE_CONV_2D",
            "FULLY_CONNECTED",
            "ADD",
            "SUB",
            "MUL",
            "MEAN",
            "AVERAGE_POOL_2D",
        ),
        _magnitudes,
    ),
    **dict.fromkeys(("SOFTMAX", "LOGISTIC", "TANH"), _transcendental),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm_bound,
    **dict.fromkeys(
        (
            "RESHAPE",
            "SQUEEZE",
            "CONCATENATION",
            "MAX_POOL_2D",
            "PAD",
            "STRIDED_SLICE",
            "RELU",
            "RELU6",
        ),
        lambda model, op, inputs, shape: 0.0,
    ),
}
"""Per op, how far two float32 evaluations on the same inputs may differ, per output element:
ops that sum (`_magnitudes`), ops that evaluate exp or tanh, the LSTM, and ops that only move or
select values (exactly equal)."""


def op_bound(model, op, inputs: list, shape):
    """`BOUNDS` for one op of `model` given its inputs as the op takes them (float32 file)."""
    if op.name not in BOUNDS:
        raise KeyError(f"tests/tolerance.py has no bound for {op.name}: add it to BOUNDS")
    return BOUNDS[op.name](model, op, inputs, shape)


# -- NumPy's own sums, and comparisons that are statistics rather than rounding -------------------
def numpy_depth(n: int) -> int:
    """How many additions any one term goes through in NumPy's sum of `n` contiguous values (and so
    in np.mean, np.sum, ndarray.mean along a contiguous axis): below 8 values a loop from 0; up to
    128, eight accumulators (n // 8 - 1 additions each), joined in 3 levels, then the n % 8 left
    over one by one; above 128, halves (a multiple of 8 first) summed the same way and added.
    Source: `pairwise_sum` in numpy/_core/src/umath/loops_utils.h.src (NumPy 2.x). Its worst case
    is 25 additions per 128-value block plus one per halving, more than the log2(n) + 1 of a plain
    pairwise sum."""
    n = int(n)
    if n < 8:
        return max(n, 1)
    if n <= 128:
        return n // 8 - 1 + 3 + n % 8
    half = n // 2
    half -= half % 8
    return 1 + max(numpy_depth(half), numpy_depth(n - half))


def numpy_mean(n: int, u: float = U64) -> float:
    """Relative error bound of NumPy's mean of `n` values of unit roundoff `u` (float64 by
    default), relative to the mean of their magnitudes (their mean itself when no term is
    negative): gamma of `numpy_depth(n)` additions and the division (Higham, Lemma 3.1)."""
    return gamma(numpy_depth(n) + 1, u)


def split_rtol(n: int) -> float:
    """`qlab.analysis.rounding.split`'s rounding_mse + clipping_mse against its total_mse, over `n`
    values. Each value's error is rounding or clipping, never both (a clipped value's rounding is
    the exact difference of two equal numbers, 0), so r**2 + c**2 = t**2 value by value, exactly;
    the three float64 means of non-negative squares are each within `numpy_mean(n)` of their exact
    values, and adding the two parts rounds once more: in all 2 numpy_mean(n) + u relative to the
    total."""
    return 2 * numpy_mean(n) + U64


Z = 4.0
"""Standard errors allowed between a sample statistic and its population value: a normal
deviate beyond 4 has probability 6e-5 (two-sided), so a derived tolerance fails on a fair sample
about once in 16,000 draws. The samples in the tests are seeded; Z says how unusual a draw may be
before the test calls it a bug."""

UNIFORM_SQUARE_CV = math.sqrt(1 / 180) * 12
"""The coefficient of variation of e**2 for e uniform on [-1/2, 1/2] (a rounding error in steps):
E e**2 = 1/12, E e**4 = 1/80, so Var e**2 = 1/80 - 1/144 = 1/180 and sd / mean = 12 / sqrt(180)
= 0.894."""


def rounding_mse_rtol(n: int, z: float = Z) -> float:
    """Relative tolerance for the mean squared rounding error of `n` values (in steps**2) against
    1/12, its value when errors are uniform over a step: z standard errors of a mean of n
    independent e**2 (the central limit theorem; `UNIFORM_SQUARE_CV` / sqrt(n) each)."""
    return z * UNIFORM_SQUARE_CV / math.sqrt(n)


def rounding_rms_rtol(n: int, z: float = Z) -> float:
    """As `rounding_mse_rtol`, for the rms (its square root): a relative error halves under a
    square root, d sqrt(m) / sqrt(m) = dm / (2 m)."""
    return rounding_mse_rtol(n, z) / 2


# -- float32 mean squared errors taken by other code (ai-edge-quantizer) --------------------------
def float32_mse_rtol(elements: int, samples: int) -> float:
    """A mean squared error taken per sample in float32 (the difference of two float32 tensors,
    squared and averaged over `elements` values, then the per-sample values averaged in float64,
    as AEQ's `validate` does: mean_squared_difference, ai_edge_quantizer/utils/validation_utils.py)
    against the same differences squared and averaged in float64. The difference itself rounds the
    same way on both sides (float32 minus float32); in float32 the square rounds once, the mean
    goes through `numpy_depth(elements)` additions and a division, all on non-negative terms, so
    relative to the value; float64 adds its own means over elements and samples on each side."""
    return (
        gamma(numpy_depth(elements) + 2)
        + numpy_mean(elements)
        + 2 * numpy_mean(samples)
        + numpy_mean(elements * samples)
    )


def float32_cosine_slack(elements: int) -> float:
    """How far above 1 a cosine similarity taken in float32 over `elements` values may come out
    (AEQ's cosine_similarity: np.dot over np.linalg.norm twice): the dot product is within
    gamma(elements) of its exact value relative to sum |a_i b_i| <= |a| |b| (Cauchy-Schwarz), each
    norm within gamma(elements) / 2 + u (a dot product, then a square root), and the division
    rounds once."""
    return gamma(elements) + 2 * (gamma(elements) / 2 + U32) + U32


# -- two TensorFlow evaluations of a Keras model ---------------------------------------------------
_KERNEL_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")
_MOVE_ONLY = ("InputLayer", "Flatten", "Reshape", "Dropout", "MaxPooling2D")
"""Layers that only move, select or (Dropout, outside training) pass values: they round nothing,
and |max(a) - max(b)| <= max |a - b| over a pooling window."""
_LIPSCHITZ_ACTIVATIONS = ("linear", "relu", "relu6")
"""Activations with |f(a) - f(b)| <= |a - b| and |f(v)| <= |v|: a difference and a magnitude go
through them unchanged."""


def _activation(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def _float64_copy(layer):
    """`layer` rebuilt from its config (no weights) in float64, its activation linear."""
    config = {**layer.get_config(), "dtype": "float64"}
    if "activation" in config:
        config["activation"] = "linear"
    return type(layer).from_config(config)


def _layer_terms(layer, input_shape) -> int:
    """Float32 roundings per output element of one Keras layer: a conv's or dense's reduction
    length and its bias; a BatchNorm's 8 (its scale and offset computed in 6: a sum, a square root
    counted as 2, a product, a product and a difference; applied in 2); a global average's pool
    size and its division; 0 for layers that move or select values and for 1-Lipschitz
    activations."""
    kind = type(layer).__name__
    if kind in _KERNEL_LAYERS:
        kernel = layer.get_weights()[0].shape
        length = (
            int(np.prod(kernel[:2])) if kind == "DepthwiseConv2D" else int(np.prod(kernel[:-1]))
        )
        return length + int(bool(layer.use_bias))
    if kind == "BatchNormalization":
        return 8
    if kind == "GlobalAveragePooling2D":
        return int(np.prod(input_shape[1:3])) + 1
    return 0


def keras_terms(model, layer: str) -> int:
    """N of `path_terms` for a Keras chain: the float32 roundings on the path from the input to
    `layer`'s output (`_layer_terms` of every layer up to it)."""
    total = 0
    for current in model.layers:
        total += _layer_terms(current, current.input_shape)
        if current.name == layer:
            return total
    raise KeyError(f"no layer {layer!r} in model {model.name!r}")


def keras_bound(model, x, layer: str, preactivation: bool = False) -> np.ndarray:
    """Per element of `layer`'s output for inputs `x`: how far two float32 evaluations of the Keras
    `model` (or of the same network converted to a float32 .tflite) may differ, whatever order
    each sums in (batch size, oneDNN or Eigen, SIMD width, the converter's calibration interpreter).

    Forward error analysis through the chain (Higham, Lemma 3.1 and §3.5), against the network
    evaluated exactly (in float64 here, a and its weights W): a float32 evaluation's error e_k at
    layer k is at most |W_k| e_(k-1), the earlier error carried through the weights, plus
    gamma(n_k) (|W_k| (|a_(k-1)| + e_(k-1)) + |b_k|), its own roundings over the sum of magnitudes
    of its n_k terms (the reduction length and the bias). A BatchNorm scales by |s| = |gamma| /
    sqrt(var + eps) and rounds 8 times (scale and offset computed in 6, applied in 2), a global
    average adds h w terms and a division; the activations allowed are 1-Lipschitz, so an error
    passes them unchanged. Two evaluations differ by at most 2 e.

    Args:
        model: a tf_keras model whose layers form a chain (each takes the previous one's output).
        x: its inputs, (n,) + its input shape (float32, as both evaluations take them).
        layer: the layer whose output is compared.
        preactivation: the bound before `layer`'s own activation (e.g. the logits of a Dense with
            softmax, which the converter keeps in a tensor of their own).

    Returns:
        float64 array of the layer's output shape, (n,) + ...

    Raises:
        KeyError: a layer type or activation without a rule here (named), or no layer `layer`.
    """
    a = np.asarray(x, np.float32).astype(np.float64)
    e = np.zeros_like(a)
    for current in model.layers:
        kind, act, last = type(current).__name__, _activation(current), current.name == layer
        if act not in _LIPSCHITZ_ACTIVATIONS and not (last and preactivation):
            raise KeyError(
                f"keras_bound has no rule for activation {act!r} of layer {current.name!r}"
            )
        if kind in _KERNEL_LAYERS:
            weights = [np.asarray(w, np.float64) for w in current.get_weights()]
            terms = _layer_terms(current, a.shape)
            exact, absolute = _float64_copy(current), _float64_copy(current)
            exact.build(a.shape)
            absolute.build(a.shape)
            exact.set_weights(weights)
            absolute.set_weights([np.abs(w) for w in weights])
            carried = absolute(e).numpy() - (
                np.abs(weights[1]) if current.use_bias else 0.0
            )  # |W| e, no bias
            magnitude = absolute(np.abs(a) + e).numpy()  # |W| (|a| + e) + |b|
            a, e = exact(a).numpy(), carried + gamma(terms) * magnitude
            if act != "linear" and not (last and preactivation):
                a = np.clip(a, 0.0, 6.0 if act == "relu6" else None)
        elif kind == "BatchNormalization":
            if not (current.scale and current.center):
                raise KeyError(
                    f"keras_bound: BatchNormalization {current.name!r} without scale and center"
                )
            g, offset, mean, var = (np.asarray(w, np.float64) for w in current.get_weights())
            s = g / np.sqrt(var + current.epsilon)
            magnitude = np.abs(s) * (np.abs(a) + e + np.abs(mean)) + np.abs(offset)
            a, e = (
                s * (a - mean) + offset,
                np.abs(s) * e + gamma(_layer_terms(current, a.shape)) * magnitude,
            )
        elif kind == "ReLU":
            a = np.clip(a, 0.0, None if current.max_value is None else float(current.max_value))
            if float(current.negative_slope) or float(current.threshold):
                raise KeyError(f"keras_bound: ReLU {current.name!r} with a slope or threshold")
        elif kind == "Activation":
            a = np.clip(a, 0.0, 6.0 if act == "relu6" else None) if act != "linear" else a
        elif kind == "GlobalAveragePooling2D":
            terms = _layer_terms(current, a.shape)
            keep = bool(current.keepdims)
            magnitude = (np.abs(a) + e).mean(axis=(1, 2), keepdims=keep)
            a, e = (
                a.mean(axis=(1, 2), keepdims=keep),
                e.mean(axis=(1, 2), keepdims=keep) + gamma(terms) * magnitude,
            )
        elif kind in _MOVE_ONLY:
            if (
                kind != "InputLayer"
            ):  # max pooling e: a window's largest error bounds the error of its max
                copy = _float64_copy(current)
                a, e = np.asarray(copy(a)), np.asarray(copy(e))
        else:
            raise KeyError(f"keras_bound has no rule for layer {current.name!r} ({kind}): add one")
        if last:
            return 2 * e
    raise KeyError(f"no layer {layer!r} in model {model.name!r}")


def extreme_bound(values: np.ndarray, bound) -> float:
    """How far max(values) and max(other) may be apart when |other - values| <= bound element by
    element, knowing `values` only: max(other) is reached at some j with
    other_j >= values_i - bound_i (i the argmax of values), so
    values_j + bound_j >= values_i - bound_i; and |max a - max b| is at most the bound at the argmax
    of a or of b. For the minimum, pass -values."""
    values = np.asarray(values, np.float64)
    bound = np.broadcast_to(np.asarray(bound, np.float64), values.shape).ravel()
    values = values.ravel()
    top = int(np.argmax(values))
    reachable = values + bound >= values[top] - bound[top]
    return float(bound[reachable].max())


# -- quantized outputs -----------------------------------------------------------------------------
def softmax_sum_atol(classes: int, scale: float) -> float:
    """How far from 1 the dequantized outputs of an integer softmax may sum: each class within one
    step of its exact probability given the op's quantized input (half a step from rounding to the
    output grid; the largest class, whose 1.0 clips to 255/256, a whole step; the kernel's exp and
    reciprocal add under 2e-4 of a step in LiteRT's builtin float32 table, and the reference
    kernel's fixed point is within a step of that table, `tests/test_intmath.py`), so `classes`
    steps in all, plus the float32 sum of the dequantized values (gamma(classes) of at most 1)."""
    return classes * scale + gamma(classes)


# -- a float32 .tflite against another float32 evaluation of the whole network ---------------------
_MOVING_OPS = (
    "RESHAPE",
    "SQUEEZE",
    "STRIDED_SLICE",
    "PAD",
    "MAX_POOL_2D",
    "MEAN",
    "AVERAGE_POOL_2D",
)
"""Ops through which an input's error bound passes as the op itself moves, selects or averages it
(a max over a window is within the window's largest error; a mean within the mean error)."""


def carried(model, op, bounds: list, inputs: list, shape):
    """How the error bounds of an op's data inputs (per element, or one number each; None for a
    constant) reach its output, on top of the op's own `op_bound`: a conv, depthwise conv or fully
    connected op is linear in its input, so the bound goes through |weights| (no bias); ops that
    move, select or average values take the bound along (`_MOVING_OPS`); ReLUs are 1-Lipschitz.
    An LSTM takes only exact inputs here (through the recurrence a bound would be multiplied by the
    recurrent weights at every step)."""
    data = [
        None if b is None else np.broadcast_to(np.asarray(b, np.float64), np.shape(i))
        for b, i in zip(bounds, inputs)
    ]
    if all(b is None or not np.any(b) for b in data):
        return 0.0
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        weights = np.abs(np.asarray(inputs[1], np.float64))
        return float_ops.compute(_unfused(op), [np.array(data[0]), weights, None], shape)
    if op.name in _MOVING_OPS:
        return float_ops.compute(_unfused(op), [np.array(data[0]), *inputs[1:]], shape)
    if op.name in ("RELU", "RELU6"):
        return np.array(data[0])
    raise KeyError(
        f"tests/tolerance.py carries no error bound through {op.name}: add it to `carried`"
    )


def network_bounds(tflite: bytes, captured: dict) -> dict:
    """Tensor index -> how far another float32 evaluation of the network may be from LiteRT's values
    `captured` (`qlab.analysis.capture.run` of the float32 file), per element: each op's own
    `op_bound` on its inputs plus what `carried` brings from earlier ops (Higham §3.5: forward
    errors through a sequence of operations). Inputs and constants: 0."""
    model = flatbuffer.read(tflite)
    bounds = dict.fromkeys(model.inputs, 0.0)
    for op in model.ops:
        inputs = [
            captured[i] if i in captured else (model.tensors[i].data if i >= 0 else None)
            for i in op.inputs
        ]
        shape = model.tensors[op.outputs[0]].shape
        incoming = [
            bounds.get(i) if i >= 0 and model.tensors[i].data is None else None for i in op.inputs
        ]
        own = op_bound(model, op, inputs, shape)
        bounds[op.outputs[0]] = np.asarray(own, np.float64) + carried(
            model, op, incoming, inputs, shape
        )
    return bounds
