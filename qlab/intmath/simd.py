"""LiteRT's optimized kernels on x86-64 run NEON code: a vector loop, then a scalar tail, each
rounding its own way.

tflite/kernels/internal/optimized/neon_check.h defines USE_NEON for every SSE4.1 build and
includes NEON_2_SSE.h, which emulates the NEON intrinsics with SSE, so the `#ifdef USE_NEON`
loops of the optimized kernels run on x86-64 as on Arm. They handle `lanes` values per
iteration while at least `lanes` remain; the scalar loop after them finishes the rest. The
vector loop's rounding right shift takes ties up (vrshlq_s32), the scalar loop's ties away
(gemmlowp's RoundingDivideByPOT), so the same integers can rescale differently depending on
where they sit: which channel (depthwise conv, spatial MEAN) or which position of the tensor
(ADD, QUANTIZE: the tensor includes the whole batch).
"""

from __future__ import annotations

import numpy as np

from qlab.intmath.fixedpoint import multiply_by_quantized_multiplier


def vector_part(size: int, lanes: int) -> np.ndarray:
    """Which of `size` positions an optimized kernel's vector loop handles; the rest is its tail.

    LiteRT's optimized kernels loop over NEON registers, `lanes` values at a time, while at least
    `lanes` remain, and finish the last size % lanes values in a scalar loop. On x86-64 the NEON
    loops run too: tflite/kernels/internal/optimized/neon_check.h defines USE_NEON for SSE4.1
    builds and includes NEON_2_SSE.h, which emulates the intrinsics with SSE. The two loops may
    round differently (`multiply_by_quantized_multiplier_simd`).

    Args:
        size: the loop's length (e.g. the channels, or every value of the tensor).
        lanes: values per vector iteration; 0 for a kernel without a vector loop.

    Returns:
        bool array of shape (size,): True for the first size − size % lanes positions.
    """
    stop = size - size % lanes if lanes else 0
    return np.arange(size) < stop


def multiply_by_quantized_multiplier_simd(x, multiplier, shift, vector) -> np.ndarray:
    """MultiplyByQuantizedMultiplier as the optimized kernels run it: vector lanes, then a tail.

    Where `vector` is True: MultiplyByQuantizedMultiplier4Rows (tflite/kernels/internal/common.h)
    or the per-channel loop of optimized_ops::Quantize (optimized/optimized_ops.h): vshlq_s32,
    vqrdmulhq_s32, then vrshlq_s32, a rounding right shift that takes ties up (NEON_2_SSE.h
    computes both exactly so on x86). Elsewhere the scalar MultiplyByQuantizedMultiplier
    (common.h), whose right shift is gemmlowp's RoundingDivideByPOT: ties away from zero. (The
    high multiplies agree: gemmlowp's nudge also sends exact halves up.)

    Args:
        x: int32 values (int64 array).
        multiplier, shift: from `quantize_multiplier` (broadcast against `x`).
        vector: bool mask broadcast against `x` (`vector_part`).

    Returns:
        int64 array of the broadcast shape, before the zero point is added and the clamp.
    """
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
