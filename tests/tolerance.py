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
Observed differences are near sqrt(N) u (rounding errors are not all of one sign), well inside.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from qlab import tflite_file
from qlab.analysis import grid
from qlab.intmath import float_ops
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


def mean_of(n: int, u: float = U32) -> float:
    """Relative bound of a mean of n values taken by NumPy (pairwise summation: gamma of about
    log2(n) + 1 levels, one division)."""
    return gamma(math.ceil(math.log2(max(n, 2))) + 2, u)


WEIGHT_SCALE_RTOL = 4 * U32
"""A weight's scale: the converter divides max |w| by 127 (or the range by 255) in float32 and
stores it in float32; qlab computes in float64 and rounds to float32 once. At most two roundings on
one side and one on the other, within 4u of each other whatever the machine (max and min are
exact)."""

SCALE_ARITHMETIC = 4 * U32
"""What computing a scale from a range adds on top of the range's own error: the subtraction,
the division and the float32 storage on the converter's side, one rounding on qlab's."""


# -- how many float32 terms a tensor's value went through ----------------------------------------
def _conv_terms(model, op) -> int:  # filter (out, kh, kw, in): one output sums kh*kw*in products
    return int(np.prod(model.tensors[op.inputs[1]].shape[1:])) + 1  # + the bias


def _depthwise_terms(model, op) -> int:  # filter (1, kh, kw, channels)
    shape = model.tensors[op.inputs[1]].shape
    return int(shape[1] * shape[2]) + 1


def _fully_connected_terms(model, op) -> int:  # weights (units, depth)
    return int(model.tensors[op.inputs[1]].shape[1]) + 1


def _lstm_terms(model, op) -> int:
    """Each step's gates sum features + units products and a bias, and the cell state adds two
    products to the last step's: over `steps` steps the last output went through all of them."""
    steps, features = model.tensors[op.inputs[0]].shape[1:3]
    units = model.tensors[op.inputs[5]].shape[1]  # recurrent_to_input weights: (units, units)
    return int(steps * (features + units + 1 + 2))


def _reduced(model, op) -> int:  # MEAN, SUM: every element of the reduced axes
    x, out = model.tensors[op.inputs[0]].shape, model.tensors[op.outputs[0]].shape
    return max(int(np.prod(x)) // max(int(np.prod(out)), 1), 1)


def _pooled(model, op) -> int:
    return int(op.option("filterHeight", 1) * op.option("filterWidth", 1))


def _last_axis(model, op) -> int:  # SOFTMAX: exponentials summed over the classes, one division
    return int(model.tensors[op.inputs[0]].shape[-1]) + 1


TERMS = {
    "CONV_2D": _conv_terms,
    "DEPTHWISE_CONV_2D": _depthwise_terms,
    "FULLY_CONNECTED": _fully_connected_terms,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm_terms,
    "MEAN": _reduced,
    "SUM": _reduced,
    "AVERAGE_POOL_2D": _pooled,
    "SOFTMAX": _last_axis,
    **dict.fromkeys(("ADD", "SUB", "MUL", "LOGISTIC", "TANH", "HARD_SWISH"), lambda m, o: 1),
    **dict.fromkeys(("RESHAPE", "SQUEEZE", "STRIDED_SLICE", "CONCATENATION", "MAX_POOL_2D",
                     "REDUCE_MAX", "RELU", "RELU6", "PAD", "QUANTIZE", "DEQUANTIZE", "SHAPE", "PACK",
                     "TRANSPOSE", "GATHER"), lambda m, o: 0),
}
"""Float32 roundings per output element of each op (its reduction length): a per-op table, so a
new op in a test model fails here by name instead of getting a guessed tolerance."""


def path_terms(tflite: bytes) -> dict[int, int]:
    """Tensor index -> N, the float32 terms summed on the longest path from the model's inputs to
    that tensor (constants and inputs: 0). Ops are in execution order in a .tflite."""
    model = tflite_file.read(tflite)
    terms = {i: 0 for i in model.inputs}
    for op in model.ops:
        if op.name not in TERMS:
            raise KeyError(f"tests/tolerance.py has no rounding count for {op.name}: add it to TERMS")
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
    model = tflite_file.read(tflite)
    quantized = [t for t in model.tensors if t.quantized]
    assert quantized and sorted(predicted) == sorted(t.index for t in quantized)
    terms = path_terms(tflite)
    for t in quantized:
        ours, theirs = predicted[t.index], grid.of_tensor(t)
        assert ours.scale.shape == theirs.scale.shape, t.name
        np.testing.assert_allclose(ours.scale, theirs.scale, rtol=grid_scale_rtol(t, terms), err_msg=t.name)
        moved = ours.scale != theirs.scale
        off = np.abs(ours.zero_point - theirs.zero_point)
        assert np.all((off == 0) | ((off == 1) & moved)), (t.name, ours.zero_point, theirs.zero_point)
        assert ours.bits == theirs.bits and ours.signed == theirs.signed, t.name


TRANSCENDENTAL = 16 * U32
"""exp, tanh and the logistic function are approximated by each kernel set (XNNPACK's polynomial
microkernels, Eigen's, the reference kernels' libm): each to within a few float32 ulps of the true
value; 16 ulps bounds any of them, so two kernel sets are within 2 x that of each other."""


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
    model = tflite_file.read(tflite)
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
    sqrt of that over the scale. On top, each side's float32 mean over the elements (`mean_of`).
    """
    assert list(ours["layer"]) == list(theirs["layer"])
    np.testing.assert_array_equal(ours["num_elements"], theirs["num_elements"])
    # the debugger's table passes through text: its scales round-trip float32, not float64
    np.testing.assert_array_equal(ours["scale"].to_numpy(np.float32), theirs["scale"].to_numpy(np.float32))
    np.testing.assert_array_equal(ours["zero_point"].to_numpy(float), theirs["zero_point"].to_numpy(float))
    d = np.array([local_bound(tflite, name) for name in ours["tensor"]])
    mse = theirs["mean_squared_error"].to_numpy(float)
    n = theirs["num_elements"].to_numpy(float) / samples
    summing = np.array([mean_of(int(k)) for k in n])
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
    return float_ops.compute(_unfused(op), absolute, shape) * reordered(TERMS[op.name](model, op) + 1)


def _transcendental(model, op, inputs, shape) -> float:  # outputs in [-1, 1]
    return reordered(TERMS[op.name](model, op) + 1) + 2 * TRANSCENDENTAL


def _lstm_bound(model, op, inputs, shape) -> float:
    """Per step, each gate's pre-activation moves by at most reordered(K) x (|W| |x| + |U| |h| +
    |b|), |h| <= 1, then through 1-Lipschitz sigmoid and tanh and their kernels' allowance; summed
    over the steps. A worst case through the recurrence would multiply by the recurrent weights'
    norm at every step (useless: about 4^8 here); a trained LSTM's gates contract, so the steps'
    differences add rather than multiply."""
    steps = model.tensors[op.inputs[0]].shape[1]
    reach = float(np.abs(inputs[0]).max())
    rows = [np.abs(np.asarray(inputs[i], np.float64)).sum(axis=1) for i in range(1, 9)]
    pre = max(float((rows[g] * reach + rows[g + 4] + np.abs(inputs[12 + g])).max()) for g in range(4))
    per_step = TERMS[op.name](model, op) // steps
    return steps * (reordered(per_step) * pre + 2 * TRANSCENDENTAL * 3)


BOUNDS = {
    **dict.fromkeys(("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "MEAN",
                     "AVERAGE_POOL_2D"), _magnitudes),
    **dict.fromkeys(("SOFTMAX", "LOGISTIC", "TANH"), _transcendental),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm_bound,
    **dict.fromkeys(("RESHAPE", "SQUEEZE", "CONCATENATION", "MAX_POOL_2D", "PAD", "STRIDED_SLICE",
                     "RELU", "RELU6"), lambda model, op, inputs, shape: 0.0),
}
"""Per op, how far two float32 evaluations on the same inputs may differ, per output element:
ops that sum (`_magnitudes`), ops that evaluate exp or tanh, the LSTM, and ops that only move or
select values (exactly equal)."""


def op_bound(model, op, inputs: list, shape):
    """`BOUNDS` for one op of `model` given its inputs as the op takes them (float32 file)."""
    if op.name not in BOUNDS:
        raise KeyError(f"tests/tolerance.py has no bound for {op.name}: add it to BOUNDS")
    return BOUNDS[op.name](model, op, inputs, shape)
