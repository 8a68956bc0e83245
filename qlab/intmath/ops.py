"""The ops without weights, each run on a prepared `Step` with one kernel family's rules.

The engine (`qlab.intmath.engine`) runs the weighted ops (accumulate, then requantize) itself
and hands every other op here: RESHAPE, SOFTMAX, QUANTIZE, ADD, CONCATENATION, MAX_POOL_2D,
AVERAGE_POOL_2D and MEAN. The arithmetic is in `integer_ops`, `elementwise`, `pooling` and
`fixedpoint`; the parameters come from `prepare`. NumPy only.
"""

from __future__ import annotations

import numpy as np

from qlab import arith
from qlab.intmath import elementwise, integer_ops, pooling, simd
from qlab.intmath.prepare import Step
from qlab.tflite import flatbuffer


def apply(step: Step, inputs: list, kernels: str) -> np.ndarray:
    """One op without weights on whole batches, with the rules of `kernels`.

    - RESHAPE, CONCATENATION: the integers copied (every input on the output's grid).
    - SOFTMAX: "reference" → `integer_ops.softmax_fixed_point`; "builtin" and "xnnpack" (which
      does not take int8 softmax) → `integer_ops.softmax_lut`.
    - QUANTIZE (int8 ↔ uint8): Requantize in tflite/kernels/to_tflite.cc. "builtin":
      optimized_ops::Requantize (optimized/optimized_ops.h), MultiplyByQuantizedMultiplier4Rows
      for 16 values of the flattened batch at a time (ties up), the scalar tail ties away
      (`simd`); "reference" and "xnnpack": MultiplyByQuantizedMultiplier (internal/common.h,
      ties away) throughout, as reference_ops::Requantize.
    - ADD: `elementwise.add`, with the builtin kernels' vector loop of `simd.LANES` values
      ("builtin") or the scalar rule throughout ("reference").
    - MAX_POOL_2D, AVERAGE_POOL_2D: `pooling.max_pool`, `pooling.average_pool` (the builtin
      and reference kernels agree on these, vector loops included).
    - MEAN: "builtin" with keep_dims over height and width of a 4-D input →
      `pooling.mean_spatial` with its vector lanes (EvalMean in tflite/kernels/reduce.cc picks
      optimized_integer_ops::Mean there); otherwise `pooling.mean` (reference_ops::
      QuantizedMeanOrSum, for both kernels).

    Args:
        step: the prepared op (`prepare.prepare`).
        inputs: the arrays of its activation inputs, in the op's order, batch axis first.
        kernels: "builtin", "reference" or "xnnpack" (the last for the first three ops only:
            `prepare.check_kernels` refuses the others).

    Returns:
        array of the output tensor's dtype, (n,) + its stored shape without the batch.

    Raises:
        NotImplementedError: an op not listed here, or a padding other than SAME or VALID.
    """
    name, p, x, out = step.op.name, step.params, inputs[0], step.output
    if name == "RESHAPE":
        return reshape(x, out)
    if name == "CONCATENATION":
        return np.concatenate(inputs, axis=p["axis"])
    if name == "SOFTMAX":
        if kernels == "reference":
            return integer_ops.softmax_fixed_point(x, p["input_scale"], p["beta"], out.dtype)
        return integer_ops.softmax_lut(
            x, p["input_scale"], p["beta"], p["output_scale"], p["output_zero_point"], out.dtype
        )
    if name == "QUANTIZE":
        vector = simd.vector_part(
            x.size, simd.LANES["QUANTIZE"] if kernels == "builtin" else 0
        ).reshape(x.shape)
        scaled = simd.multiply_by_quantized_multiplier_simd(
            x.astype(np.int64) - p["input_zero_point"], p["multiplier"], p["shift"], vector
        )
        return np.clip(scaled + p["output_zero_point"], *arith.integer_range(out.dtype)).astype(
            out.dtype
        )
    if name == "ADD":
        return elementwise.add(
            *inputs,
            p["zero_points"],
            p["rescale"],
            p["output_zero_point"],
            p["act_min"],
            p["act_max"],
            simd.LANES["ADD"] if kernels == "builtin" else 0,
        )
    if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        pool = pooling.max_pool if name == "MAX_POOL_2D" else pooling.average_pool
        return pool(x, p["kernel"], p["stride"], p["padding"], p["act_min"], p["act_max"])
    if name == "MEAN":
        if p["spatial"] and kernels == "builtin":
            return pooling.mean_spatial(x, *p["spatial_rescale"], simd.LANES["MEAN"])
        return pooling.mean(
            x,
            p["axes"],
            p["keep_dims"],
            p["input_zero_point"],
            p["multiplier"],
            p["shift"],
            p["output_zero_point"],
        )
    raise NotImplementedError(f"op {name} is not implemented by qlab.intmath.ops")


def reshape(x: np.ndarray, out: flatbuffer.Tensor) -> np.ndarray:
    """RESHAPE copies the integers as they are; the stored shape's batch becomes the run's.

    Returns:
        `x` reshaped to (len(x),) + out.shape[1:], its dtype unchanged.
    """
    return x.reshape(len(x), *out.shape[1:])
