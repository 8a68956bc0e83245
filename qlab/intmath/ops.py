"""The ops without weights, each run on a prepared `Step` with one kernel family's rules:
RESHAPE, SOFTMAX, QUANTIZE, ADD, CONCATENATION, MAX_POOL_2D, AVERAGE_POOL_2D and MEAN. NumPy
only."""

from __future__ import annotations

import numpy as np

from qlab import arith
from qlab.intmath import elementwise, integer_ops, pooling, simd
from qlab.intmath.prepare import Step
from qlab.tflite import flatbuffer


def apply(step: Step, inputs: list, kernels: str) -> np.ndarray:
    """One op without weights on whole batches, with the rules of `kernels`.

    - SOFTMAX: "reference" `integer_ops.softmax_fixed_point`; "builtin" and "xnnpack" (which does
      not take int8 softmax) `integer_ops.softmax_lut`.
    - QUANTIZE (int8 ↔ uint8): Requantize in tflite/kernels/to_tflite.cc. "builtin":
      optimized_ops::Requantize (optimized/optimized_ops.h), 16 values of the flattened batch at a
      time ties up, the tail ties away (`simd`); otherwise reference_ops::Requantize, ties away.
    - ADD: `elementwise.add`, with the builtin vector loop ("builtin") or the scalar rule
      throughout.
    - MEAN: "builtin" keep_dims over height and width of 4-D input `pooling.mean_spatial` (EvalMean
      in tflite/kernels/reduce.cc picks optimized_integer_ops::Mean there), otherwise
      `pooling.mean`.
    - RESHAPE, CONCATENATION copy the integers; the pooling kernels agree across kernel families.

    Returns an array of the output tensor's dtype, (n,) + its stored shape without the batch.
    Raises NotImplementedError for another op, or a padding other than SAME or VALID."""
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
    """Returns `x` reshaped to (len(x),) + out.shape[1:]: RESHAPE copies the integers."""
    return x.reshape(len(x), *out.shape[1:])
