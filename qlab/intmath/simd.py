"""LiteRT's optimized kernels on x86-64 run NEON code: a vector loop, then a scalar tail, each
rounding its own way.

tflite/kernels/internal/optimized/neon_check.h defines USE_NEON for every SSE4.1 build and
includes NEON_2_SSE.h, which emulates the NEON intrinsics with SSE. The loops handle `lanes`
values per iteration while at least `lanes` remain; a scalar loop finishes the rest. The vector
loop's rounding right shift takes ties up (vrshlq_s32), the scalar loop's ties away (gemmlowp's
RoundingDivideByPOT), so the same integers rescale differently depending on where they sit."""

from __future__ import annotations

import numpy as np

from qlab.intmath.fixedpoint import multiply_by_quantized_multiplier


def vector_part(size: int, lanes: int) -> np.ndarray:
    """Returns a bool mask (size,), True for the first size − size % lanes positions: those the
    vector loop handles (lanes=0: none)."""
    stop = size - size % lanes if lanes else 0
    return np.arange(size) < stop


def multiply_by_quantized_multiplier_simd(x, multiplier, shift, vector) -> np.ndarray:
    """Returns MultiplyByQuantizedMultiplier as the optimized kernels run it, int64, before the zero
    point and clamp.

    Where `vector`: MultiplyByQuantizedMultiplier4Rows (tflite/kernels/internal/common.h) or the
    per-channel loop of optimized_ops::Quantize (optimized/optimized_ops.h): vshlq_s32,
    vqrdmulhq_s32, then vrshlq_s32, ties up (NEON_2_SSE.h computes both exactly so on x86).
    Elsewhere the scalar MultiplyByQuantizedMultiplier (common.h): RoundingDivideByPOT, ties
    away."""
    return np.where(
        vector,
        multiply_by_quantized_multiplier(x, multiplier, shift, "up"),
        multiply_by_quantized_multiplier(x, multiplier, shift, "away"),
    )


LANES = {"DEPTHWISE_CONV_2D": 8, "ADD": 16, "MEAN": 16, "QUANTIZE": 16}
"""Values per vector iteration of the builtin int8 kernels whose tail rounds differently:
the per-channel loop of optimized_ops::Quantize that ends optimized_integer_ops::
depthwise_conv::DepthwiseConvGeneral (8 channels), AddElementwiseInt8 (optimized/integer_ops/
add.h, 16 values of the flattened batch), optimized_integer_ops::MeanImpl (optimized/
integer_ops/mean.h, 16 channels, one thread as `qlab.tflite.runtime` runs LiteRT) and
optimized_ops::Requantize between int8 and uint8 (optimized/optimized_ops.h, 16 values of the
flattened batch)."""
