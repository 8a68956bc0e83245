"""The integer arithmetic of an int8 .tflite, one NumPy function per rule the runtime applies.

Every function works on whole batches. Integers are held in int64 arrays, so nothing overflows
by accident; where the kernels compute in 32 bits and wrap, `wrap32` does the same. Each rule
names the LiteRT, ruy, gemmlowp or XNNPACK source it follows; none of their code is copied.
Rounding "ties" are named for what happens to an exact half: "away" (from zero), "up"
(towards +infinity), "even" (to the even neighbour).
"""

from __future__ import annotations

import numpy as np

from qlab.runtime import round_half_away

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def wrap32(x: np.ndarray) -> np.ndarray:
    """What a 32-bit register holds after the operation (two's complement wrap-around)."""
    return (np.asarray(x, np.int64) + 2**31) % 2**32 - 2**31


# -- the quantized multiplier -----------------------------------------------------------------
def quantize_multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    """A positive real scale as multiplier × 2^(shift − 31), multiplier a 31-bit integer.

    Follows QuantizeMultiplier in tflite/kernels/internal/quantization_util.cc: frexp gives
    real = q × 2^shift with q in [0.5, 1); the multiplier is round(q × 2^31), half away from zero.
    """
    real = np.atleast_1d(np.asarray(real, np.float64))
    if np.any(real < 0) or not np.all(np.isfinite(real)):
        raise ValueError(f"a requantization scale must be finite and non-negative, got {real}")
    q, shift = np.frexp(real)
    multiplier = round_half_away(q * 2.0**31).astype(np.int64)
    shift = shift.astype(np.int64)
    carry = multiplier == 2**31  # q rounded up to 1.0: halve it, one more bit of shift
    multiplier[carry] //= 2
    shift[carry] += 1
    tiny = shift < -31  # every bit would be shifted out: the runtime flushes these to zero
    multiplier[tiny], shift[tiny] = 0, 0
    return multiplier, shift


def rounding_doubling_high_mul(a, b, ties: str = "away") -> np.ndarray:
    """The high 32 bits of 2·a·b, rounded: (a·b) / 2^31 to the nearest integer.

    ties="away": gemmlowp's SaturatingRoundingDoublingHighMul (fixedpoint/fixedpoint.h), used by
    TFLite's reference kernels. ties="up": ruy's x86 kernels (ruy/kernel_avx2_fma.cc,
    kernel_avx512.cc add 2^30 and shift right by 31), used by LiteRT's builtin kernels on x86.
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    if ties == "up":
        return (ab + 2**30) >> 31
    if ties != "away":
        raise ValueError(f"ties must be 'away' or 'up', got {ties!r}")
    nudged = ab + np.where(ab >= 0, 2**30, 1 - 2**30)
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # C division truncates
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent, ties: str = "away") -> np.ndarray:
    """x / 2^exponent rounded to nearest: a rounding arithmetic right shift.

    ties="away": gemmlowp's RoundingDivideByPOT; ties="up": ruy's x86 rounding_right_shift.
    """
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    if ties == "up":
        return (x + np.where(exponent > 0, np.left_shift(1, np.maximum(exponent - 1, 0)), 0)) >> exponent
    if ties != "away":
        raise ValueError(f"ties must be 'away' or 'up', got {ties!r}")
    mask = np.left_shift(1, exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift, ties: str = "away") -> np.ndarray:
    """x × multiplier × 2^(shift − 31) in integers: shift left, high multiply, rounding shift right.

    Follows MultiplyByQuantizedMultiplier (tflite/kernels/internal/common.cc, double rounding):
    a left shift for shift > 0 (in 32 bits), the rounding doubling high multiply, then a
    rounding right shift for shift < 0. Both roundings use `ties`.
    """
    shift = np.asarray(shift, np.int64)
    shifted = wrap32(np.asarray(x, np.int64) << np.maximum(shift, 0))
    high = rounding_doubling_high_mul(shifted, multiplier, ties)
    return rounding_divide_by_pot(high, np.maximum(-shift, 0), ties)


def requantize_fp32(acc, scale) -> np.ndarray:
    """XNNPACK's rule: float32(acc) × float32 scale, rounded half to even (cvtps2dq / lrintf).

    XNNPACK computes scale = input_scale × kernel_scale / output_scale in float32
    (src/operators/convolution-nhwc.c, fully-connected-nc.c).
    """
    y = np.asarray(acc).astype(np.float32) * np.asarray(scale, np.float32)
    return np.rint(y).astype(np.int64)


def activation_range(activation: str, scale: float, zero_point: int, dtype) -> tuple[int, int]:
    """The int range a fused activation clamps to (CalculateActivationRangeQuantized, kernel_util.cc).

    A fused ReLU costs nothing at run time: it is the lower clamp at the zero point.
    """
    info = np.iinfo(dtype)
    q = lambda real: zero_point + int(round_half_away(np.float64(np.float32(real) / np.float32(scale))))
    if activation == "NONE":
        return info.min, info.max
    if activation == "RELU":
        return max(info.min, q(0.0)), info.max
    if activation == "RELU6":
        return max(info.min, q(0.0)), min(info.max, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(info.min, q(-1.0)), min(info.max, q(1.0))
    raise NotImplementedError(f"fused activation {activation} is not implemented by qlab.intmath; "
                              "implemented: NONE, RELU, RELU6, RELU_N1_TO_1")


# -- accumulation -------------------------------------------------------------------------------
def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """Output size and (before, after) padding of SAME padding (ComputePaddingWithOffset)."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2, total - total // 2


def im2col(x: np.ndarray, kernel: tuple[int, int], stride=(1, 1), dilation=(1, 1),
           padding: str = "VALID") -> tuple[np.ndarray, tuple[int, int, int]]:
    """Every receptive field of an (n, h, w, c) array as one row of kh·kw·c values.

    The builtin conv kernel lays its input out the same way before one matrix multiply. SAME
    padding pads with zeros, which is the zero point once the zero point is subtracted.
    """
    n, h, wd, c = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    if padding == "SAME":
        oh, top, bottom = same_padding(h, kh, sh, dh)
        ow, left, right = same_padding(wd, kw, sw, dw)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    elif padding == "VALID":
        oh, ow = (h - (kh - 1) * dh - 1) // sh + 1, (wd - (kw - 1) * dw - 1) // sw + 1
    else:
        raise NotImplementedError(f"padding {padding} is not implemented by qlab.intmath")
    patches = [x[:, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw, :]
               for i in range(kh) for j in range(kw)]
    return np.stack(patches, axis=3).reshape(n * oh * ow, kh * kw * c), (n, oh, ow)


def conv2d_accumulate(q, input_zero_point: int, weights, bias, stride=(1, 1), dilation=(1, 1),
                      padding: str = "VALID") -> np.ndarray:
    """int32 accumulators of a 2-D convolution: Σ (q − input_zero_point) · w + bias.

    q is (n, h, w, c) int8, weights (out_channels, kh, kw, c) int8 with zero point 0 (TFLite's
    spec for int8 weights), bias int32. The products and sums stay in int32, as in the kernel:
    |acc| ≤ 255 · 128 · kh·kw·c + |bias|, far below 2^31 for any layer here.
    """
    w = np.asarray(weights, np.int32)
    x = np.asarray(q, np.int32) - np.int32(input_zero_point)
    if w.shape[3] != x.shape[3]:
        raise ValueError(f"conv input has {x.shape[3]} channels, its weights expect {w.shape[3]}")
    cols, shape = im2col(x, w.shape[1:3], stride, dilation, padding)
    acc = cols @ w.reshape(len(w), -1).T
    if bias is not None:
        acc += np.asarray(bias, np.int32)
    return acc.reshape(*shape, len(w)).astype(np.int64)


def fully_connected_accumulate(q, input_zero_point: int, weights, bias, weights_zero_point: int = 0):
    """int32 accumulators of a fully connected layer: Σ (q − input_zero_point) · (w − w_zp) + bias."""
    w = np.asarray(weights, np.int32) - np.int32(weights_zero_point)
    x = np.asarray(q, np.int32).reshape(-1, w.shape[1]) - np.int32(input_zero_point)
    acc = x @ w.T
    if bias is not None:
        acc += np.asarray(bias, np.int32)
    return acc.astype(np.int64)


# -- softmax ------------------------------------------------------------------------------------
def softmax_lut(q, input_scale: float, beta: float, output_scale: float, output_zero_point: int,
                dtype=np.int8) -> np.ndarray:
    """LiteRT's builtin int8 softmax on x86: a float32 table of exp(−scale·d) for d = max − q.

    Follows PopulateSoftmaxLookupTable and Softmax<int8> in tflite/kernels/internal/optimized/
    optimized_ops.h (the uint16 LUT variant exists only for aarch64 clang builds). The sum runs
    left to right in float32 and the result rounds half away from zero, as the kernel does.
    """
    q = np.asarray(q, np.int64)
    scale = np.float32(-np.float32(input_scale) * np.float32(beta))
    table = np.exp((scale * np.arange(256, dtype=np.float32)).astype(np.float64)).astype(np.float32)
    exps = table[q.max(axis=-1, keepdims=True) - q]  # exp(scale · (max − q))
    total = np.zeros(q.shape[:-1], np.float32)
    for j in range(q.shape[-1]):  # sequential float32 sum, not NumPy's pairwise sum
        total += exps[..., j]
    inv = np.float32(1.0) / (total * np.float32(output_scale))
    probs = round_half_away((exps * inv[..., None]).astype(np.float64)).astype(np.int64) + output_zero_point
    info = np.iinfo(dtype)
    return np.clip(probs, info.min, info.max).astype(dtype)


def _srdhm(a, b):
    return rounding_doubling_high_mul(a, b, "away")


def _saturating_shift_left(x, bits: int) -> np.ndarray:
    limit = 2 ** (31 - bits) - 1
    return np.where(x > limit, INT32_MAX, np.where(x < -limit, INT32_MIN, x << bits))


def exp_on_negative_values(a: np.ndarray, integer_bits: int = 5) -> np.ndarray:
    """exp(a) for a ≤ 0 in fixed point: a is Q5.26, the result Q0.31.

    Follows gemmlowp's exp_on_negative_values (fixedpoint/fixedpoint.h): a 4th-order Taylor
    expansion around −1/8 on [−1/4, 0), then one multiplication by a constant exp(−2^k) per set bit
    of the remaining whole quarters (the "barrel shifter").
    """
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter  # in [−1/4, 0)
    x = _saturating_shift_left(a_mod, integer_bits) + (1 << 28)  # Q0.31, then x = a + 1/8
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4_over_4 = rounding_divide_by_pot(_srdhm(x2, x2), 2)
    poly = rounding_divide_by_pot(_srdhm(x4_over_4 + x3, 715827883) + x2, 1)  # 715827883 = 1/3
    result = 1895147668 + _srdhm(1895147668, x + poly)  # 1895147668 = exp(−1/8)
    remainder = wrap32(a_mod - a)
    for k, constant in zip(range(-2, 5), (1672461947, 1302514674, 790015084, 290630308,
                                          39332535, 720401, 242)):  # exp(−2^k) in Q0.31
        if integer_bits > k:
            result = np.where(remainder & (1 << (frac + k)), _srdhm(result, constant), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1), Q0.31 in and out: three Newton-Raphson steps (gemmlowp)."""
    total = a + INT32_MAX
    half_denominator = (total + np.where(total >= 0, 1, -1)) // 2  # RoundingHalfSum(a, 1)
    x = 1515870810 + _srdhm(half_denominator, -1010580540)  # 48/17 − 32/17 · d, Q2.29
    for _ in range(3):
        one_minus = (1 << 29) - _srdhm(half_denominator, x)
        x = x + _saturating_shift_left(_srdhm(x, one_minus), 2)
    return _saturating_shift_left(x, 1)


def softmax_fixed_point(q, input_scale: float, beta: float, dtype=np.int8) -> np.ndarray:
    """TFLite's reference int8 softmax: integers only, output scale 1/256, zero point −128.

    Follows reference_ops::Softmax (tflite/kernels/internal/reference/softmax.h) with
    PreprocessSoftmaxScaling and CalculateInputRadius (quantization_util.cc): the differences to
    the row maximum become Q5.26, exp runs in fixed point, the sum is a Q12.19, and its
    reciprocal comes from GetReciprocal (common.h).
    """
    q = np.asarray(q, np.int64)
    real = min(float(beta) * float(input_scale) * 2.0**26, 2.0**31 - 1.0)
    multiplier, left_shift = (int(v[0]) for v in quantize_multiplier(real))
    diff_min = -int(np.floor(31.0 * 2**26 / 2**left_shift))
    diff = q - q.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    exps = exp_on_negative_values(_srdhm(wrap32(diff << left_shift), multiplier))
    total = np.where(used, rounding_divide_by_pot(exps, 12), 0).sum(axis=-1)  # Q12.19
    headroom = 32 - np.frexp(total.astype(np.float64))[1].astype(np.int64)  # leading zeros
    scale = one_over_one_plus_x(wrap32((total << headroom) - 2**31))
    exponent = (12 - headroom) + 31 - 8
    info = np.iinfo(dtype)
    probs = rounding_divide_by_pot(_srdhm(scale[..., None], exps), exponent[..., None]) + info.min
    return np.where(used, np.clip(probs, info.min, info.max), info.min).astype(dtype)


# -- the float computation each integer op approximates ------------------------------------------
ACTIVATION_BOUNDS = {"NONE": (None, None), "RELU": (0, None), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}
FLOAT_OPS = ("CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX")


def float_op(op, x: np.ndarray, weights=None, bias=None, output_shape=None) -> np.ndarray:
    """One op of a .tflite (a qlab.tflite_file.Op) computed in float on real values `x`.

    `weights` are (out, kh, kw, in) for CONV_2D and (out, in) for FULLY_CONNECTED; the fused
    activation is applied. The arithmetic stays in x's dtype.
    """
    name = op.name
    if name == "RESHAPE":
        return x.reshape(len(x), *output_shape[1:])
    if name == "SOFTMAX":
        beta = float(op.option("beta", 1.0))
        e = np.exp(beta * (x - x.max(axis=-1, keepdims=True)))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "CONV_2D":
        from qlab.tflite_file import PADDINGS

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
