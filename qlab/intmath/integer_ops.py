"""The integer kernels of an int8 .tflite in NumPy: accumulation (convolution, depthwise
convolution, fully connected) and softmax (the builtin kernels' float table and the reference
kernels' fixed point). Whole batches, int64 arrays throughout; each function names the LiteRT
source it follows, none of their code is copied. The rescaling rules are in `fixedpoint`."""

from __future__ import annotations

import numpy as np

from qlab.arith import round_half_away
from qlab.intmath.fixedpoint import (
    exp_on_negative_values,
    one_over_one_plus_x,
    quantize_multiplier,
    rounding_divide_by_pot,
    srdhm,
    wrap32,
)


# -- accumulation -------------------------------------------------------------------------------
def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """Returns (out, before, after) in pixels of SAME padding along one spatial axis.

    ComputePaddingWithOffset (tflite/kernels/padding.h): out = ceil(size / stride), the total
    padding split with the odd pixel after."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2, total - total // 2


def windows(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride=(1, 1),
    dilation=(1, 1),
    padding: str = "VALID",
    pad_value=0,
) -> np.ndarray:
    """Returns every receptive field of an (n, h, w, c) array, (n, out_h, out_w, kh·kw, c), windows
    ordered (kh, kw): what a conv, depthwise conv or pool reads.

    Output size and padding follow ComputePaddingWithOffset (tflite/kernels/padding.h); SAME
    padding holds `pad_value` (-inf for max pooling). Raises NotImplementedError for a padding
    other than SAME or VALID."""
    n, h, wd, c = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    if padding == "SAME":
        oh, top, bottom = same_padding(h, kh, sh, dh)
        ow, left, right = same_padding(wd, kw, sw, dw)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    elif padding == "VALID":
        oh, ow = (h - (kh - 1) * dh - 1) // sh + 1, (wd - (kw - 1) * dw - 1) // sw + 1
    else:
        raise NotImplementedError(f"padding {padding} is not implemented by qlab.intmath")
    patches = [
        x[:, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return np.stack(patches, axis=3)


def im2col(
    x: np.ndarray, kernel: tuple[int, int], stride=(1, 1), dilation=(1, 1), padding: str = "VALID"
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Returns (cols, (n, out_h, out_w)): every receptive field as a row of kh·kw·c values ordered
    (kh, kw, c), like the weights' (out_channels, kh, kw, c).

    The builtin conv kernel lays its input out so before one matrix multiply
    (optimized_ops::Im2col, then cpu_backend_gemm). Raises NotImplementedError for a padding
    other than SAME or VALID."""
    patches = windows(x, kernel, stride, dilation, padding)
    n, oh, ow = patches.shape[:3]
    return patches.reshape(n * oh * ow, -1), (n, oh, ow)


def conv2d_accumulate(
    q, input_zero_point: int, weights, bias, stride=(1, 1), dilation=(1, 1), padding: str = "VALID"
) -> np.ndarray:
    """Returns the int32 accumulators of a 2-D convolution, Σ (q − input_zero_point) · w + bias, as
    int64 (n, out_h, out_w, out_channels).

    q is (n, h, w, c) int8, weights (out_channels, kh, kw, c) int8 with zero point 0, bias int32.
    The sums stay in int32 as in reference_integer_ops::ConvPerChannel
    (tflite/kernels/internal/reference/integer_ops/conv.h), up to the requantization.

    Raises:
        ValueError: weights whose input channels differ from q's.
        NotImplementedError: a padding other than SAME or VALID."""
    w = np.asarray(weights, np.int32)
    x = np.asarray(q, np.int32) - np.int32(input_zero_point)
    if w.shape[3] != x.shape[3]:
        raise ValueError(f"conv input has {x.shape[3]} channels, its weights expect {w.shape[3]}")
    cols, shape = im2col(x, w.shape[1:3], stride, dilation, padding)
    acc = cols @ w.reshape(len(w), -1).T
    if bias is not None:
        acc += np.asarray(bias, np.int32)
    return acc.reshape(*shape, len(w)).astype(np.int64)


def depthwise_conv2d_accumulate(
    q, input_zero_point: int, weights, bias, stride=(1, 1), dilation=(1, 1), padding: str = "VALID"
) -> np.ndarray:
    """Returns the int32 accumulators of a depthwise convolution, as int64 (n, out_h, out_w,
    out_channels).

    Output channel ic·m + k (m = out_channels / in_channels) sums (q − input_zero_point) · w over
    its window of input channel ic, plus its bias; weights (1, kh, kw, out_channels) int8. Follows
    reference_integer_ops::DepthwiseConvPerChannel (reference/integer_ops/depthwise_conv.h) and, on
    x86-64, optimized_integer_ops::depthwise_conv::DepthwiseConvGeneral
    (optimized/integer_ops/depthwise_conv.h), which give the same sums; the multiplier comes from
    the shapes, as ComputeDepthMultiplier in tflite/kernels/depthwise_conv.cc.

    Raises:
        ValueError: out_channels not a multiple of the input's channels.
        NotImplementedError: a padding other than SAME or VALID."""
    w = np.asarray(weights, np.int32)
    x = np.asarray(q, np.int32) - np.int32(input_zero_point)
    channels = w.shape[3]
    if channels % x.shape[3]:
        raise ValueError(
            f"depthwise weights have {channels} channels, not a multiple of the "
            f"input's {x.shape[3]}"
        )
    x = np.repeat(
        x, channels // x.shape[3], axis=3
    )  # output channel ic·m + k reads input channel ic
    patches = windows(x, w.shape[1:3], stride, dilation, padding)
    acc = np.einsum("nhwkc,kc->nhwc", patches, w.reshape(-1, channels))
    if bias is not None:
        acc += np.asarray(bias, np.int32)
    return acc.astype(np.int64)


def fully_connected_accumulate(
    q, input_zero_point: int, weights, bias, weights_zero_point: int = 0
):
    """Returns the int32 accumulators Σ (q − input_zero_point) · (w − w_zp) + bias, as int64
    (q.size // depth, units).

    reference_integer_ops::FullyConnected (reference/integer_ops/fully_connected.h) up to the
    requantization: the input flattened to rows of the weights' depth, sums in int32."""
    w = np.asarray(weights, np.int32) - np.int32(weights_zero_point)
    x = np.asarray(q, np.int32).reshape(-1, w.shape[1]) - np.int32(input_zero_point)
    acc = x @ w.T
    if bias is not None:
        acc += np.asarray(bias, np.int32)
    return acc.astype(np.int64)


# -- softmax ------------------------------------------------------------------------------------
def softmax_lut(
    q, input_scale: float, beta: float, output_scale: float, output_zero_point: int, dtype=np.int8
) -> np.ndarray:
    """LiteRT's builtin int8 softmax on x86: a float32 table of exp(−scale·d) for d = max − q.

    PopulateSoftmaxLookupTable and Softmax<int8> in
    tflite/kernels/internal/optimized/optimized_ops.h (the uint16 LUT variant is for aarch64 clang
    builds only). The sum runs left to right in float32, the result rounds half away
    (QuantizeSoftmaxOutput: std::round for int8; uint8 on x86 truncates prob + 0.5f instead, not
    reproduced). Prepare: SoftmaxPrepare in tflite/kernels/activations.cc.

    Returns an array of `dtype`, the shape of `q` (softmax over the last axis)."""
    q = np.asarray(q, np.int64)
    scale = np.float32(-np.float32(input_scale) * np.float32(beta))
    table = np.exp((scale * np.arange(256, dtype=np.float32)).astype(np.float64)).astype(np.float32)
    exps = table[q.max(axis=-1, keepdims=True) - q]  # exp(scale · (max − q))
    total = np.zeros(q.shape[:-1], np.float32)
    for j in range(q.shape[-1]):  # sequential float32 sum, not NumPy's pairwise sum
        total += exps[..., j]
    inv = np.float32(1.0) / (total * np.float32(output_scale))
    probs = (
        round_half_away((exps * inv[..., None]).astype(np.float64)).astype(np.int64)
        + output_zero_point
    )
    info = np.iinfo(dtype)
    return np.clip(probs, info.min, info.max).astype(dtype)


def softmax_fixed_point(q, input_scale: float, beta: float, dtype=np.int8) -> np.ndarray:
    """TFLite's reference int8 softmax: integers only, output scale 1/256, zero point −128.

    reference_ops::Softmax (tflite/kernels/internal/reference/softmax.h) with
    PreprocessSoftmaxScaling and CalculateInputRadius (quantization_util.cc): differences to the row
    maximum become Q5.26, exp runs in fixed point, the sum is Q12.19, its reciprocal from
    GetReciprocal (common.h). Prepare: SoftmaxPrepare in tflite/kernels/activations.cc (kReference).
    Differences below the input radius give the dtype's minimum.

    Returns an array of `dtype`, the shape of `q` (softmax over the last axis)."""
    q = np.asarray(q, np.int64)
    real = min(float(beta) * float(input_scale) * 2.0**26, 2.0**31 - 1.0)
    multiplier, left_shift = (int(v[0]) for v in quantize_multiplier(real))
    diff_min = -int(np.floor(31.0 * 2**26 / 2**left_shift))
    diff = q - q.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    exps = exp_on_negative_values(srdhm(wrap32(diff << left_shift), multiplier))
    total = np.where(used, rounding_divide_by_pot(exps, 12), 0).sum(axis=-1)  # Q12.19
    headroom = 32 - np.frexp(total.astype(np.float64))[1].astype(np.int64)  # leading zeros
    scale = one_over_one_plus_x(wrap32((total << headroom) - 2**31))
    exponent = (12 - headroom) + 31 - 8
    info = np.iinfo(dtype)
    probs = rounding_divide_by_pot(srdhm(scale[..., None], exps), exponent[..., None]) + info.min
    return np.where(used, np.clip(probs, info.min, info.max), info.min).astype(dtype)
