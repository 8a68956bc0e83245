"""Checked exercises of notebook 06 (integer arithmetic): a real rescale factor as a 31-bit
multiplier and a shift, an int32 accumulator requantized to int8 as LiteRT's builtin kernels do it,
and an int8 dot product with zero points.

Each check runs the learner's function on small inputs chosen to catch the usual slips (a mantissa
that rounds up to 1.0, exact halves, values past the clamp, int8 arithmetic that wraps) and compares
the result with `qlab.intmath.fixedpoint`, `qlab.intmath.integer_ops` and the integer engine's rules
for the baseline's int8 file (which equal LiteRT's, bit for bit), computed when the check runs.
"""

from __future__ import annotations

import numpy as np

from qlab import arith, artifacts, intmath
from qlab.intmath import fixedpoint, integer_ops
from qlab.training import data, fit
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

# -- the quantized multiplier ----------------------------------------------------------------------
MULTIPLIER_HINT = (
    "np.frexp(real) gives q in [0.5, 1) and an exponent e with real = q · 2^e; the multiplier is "
    "q · 2^31 rounded to the nearest integer (halves away from zero) and the shift is e; if the "
    "rounding gives 2^31, halve it and add 1 to the shift. Compare with "
    "qlab.intmath.fixedpoint.quantize_multiplier"
)


def multiplier_cases() -> list[float]:
    """The real multipliers `check_quantize_multiplier` tries.

    Returns:
        floats: an exact power of two, typical requantization factors (1e-5 to 1, seeded), two
        above 1 (a left shift), and last one whose mantissa rounds up to 1.0 (0.5 − 1e-12).
    """
    rng = np.random.default_rng(6)
    return [
        0.5,
        0.75,
        1 / 3,
        *(float(v) for v in 10.0 ** rng.uniform(-5, 0, 12)),
        1.75,
        3.0,
        0.5 - 1e-12,
    ]


def _as_pair(got, real):
    """The learner's (multiplier, shift) as two Python ints, or `Wrong` saying what came back."""
    got = feedback.answered(got)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Wrong(
            f"for M = {real!r} your function returned {got!r}; expected a pair (multiplier, "
            "shift).",
            MULTIPLIER_HINT,
        )
    pair = []
    for value in got:
        value = np.asarray(value)
        if value.size != 1 or not float(value.reshape(-1)[0]).is_integer():
            raise Wrong(
                f"for M = {real!r} your function returned {got!r}; multiplier and shift are whole "
                "numbers (int(...)).",
                MULTIPLIER_HINT,
            )
        pair.append(int(value.reshape(-1)[0]))
    return tuple(pair)


@feedback.checked("06", hint=MULTIPLIER_HINT)
def check_quantize_multiplier(to_multiplier):
    """Check the learner's `to_multiplier(real) -> (multiplier, shift)` against
    `qlab.intmath.fixedpoint.quantize_multiplier` on `multiplier_cases()`.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a pair differs (named slips: truncation instead of rounding, no carry when the
            mantissa rounds up to 2^31, the shift's sign flipped, a mantissa in [1, 2)).
        Unanswered: the function still returns the placeholder.
    """
    cases = multiplier_cases()
    for real in cases:
        multiplier, shift = (int(v[0]) for v in fixedpoint.quantize_multiplier(real))
        got = _as_pair(to_multiplier(real), real)
        if got == (multiplier, shift):
            continue
        q, e = np.frexp(real)
        slips = {  # later entries win where two slips give the same pair (the carry case)
            (
                2 * multiplier,
                shift - 1,
            ): "your mantissa lies in [1, 2): frexp's lies in [0.5, 1), so that "
            "the multiplier stays below 2^31.",
            (multiplier, -shift): "your shift has the opposite sign: it is the power of two in "
            "M = multiplier · 2^(shift − 31), negative when M < 1/2 (a right shift).",
            (
                int(q * 2**31),
                int(e),
            ): "you truncated q · 2^31 (int() or floor); QuantizeMultiplier rounds it "
            "to the nearest integer.",
            (
                2**31,
                int(e),
            ): "the mantissa rounded up to 2^31, which does not fit in 31 bits: halve the "
            "multiplier and add 1 to the shift.",
        }
        message = slips.get(got, "")
        if not message and got[0] >= 2**31:
            message = "your multiplier does not fit in 31 bits (it must stay below 2^31)."
        raise Wrong(
            f"for M = {real!r}: expected multiplier {multiplier:,} and shift {shift}, got "
            f"{got[0]:,} and {got[1]}. {message}".rstrip(),
            MULTIPLIER_HINT,
        )
    return (
        f"all {len(cases)} multipliers match quantize_multiplier, the carry at 2^31 and M > 1 "
        "included: M = multiplier · 2^(shift − 31) to 31 bits of precision."
    )


# -- requantization --------------------------------------------------------------------------------
REQUANTIZE_HINT = (
    "high = fixedpoint.rounding_doubling_high_mul(acc, multiplier, ties='up'), then "
    "fixedpoint.rounding_divide_by_pot(high, -shift, ties='up'), add the output zero point, "
    "clip to [act_min, act_max], .astype(np.int8); compare with "
    "fixedpoint.multiply_by_quantized_multiplier(acc, multiplier, shift, ties='up')"
)


def synthetic_layer() -> dict:
    """A layer with no fused activation (clamp −128..127), 8 output channels, zero point 5, and
    accumulators that include exact halves after the high multiply, negative ones too.

    Returns:
        {"acc": int64 (96, 8), "multiplier", "shift": int64 (8,), "zero_point": 5,
        "act_min": -128, "act_max": 127}.
    """
    rng = np.random.default_rng(60)
    multiplier, shift = fixedpoint.quantize_multiplier(10.0 ** rng.uniform(-3, -2, 8))
    draws = rng.integers(-40_000, 40_000, (200_000, 8))
    high = fixedpoint.rounding_doubling_high_mul(draws, multiplier, ties="up")
    n = -shift
    tie = (high & ((1 << n) - 1)) == (1 << (n - 1))  # exactly half a step before the rounding shift
    columns = []
    for c in range(8):
        ties = draws[tie[:, c], c]
        pick = np.concatenate([ties[ties < 0][:6], ties[ties > 0][:2], draws[:88, c]])
        columns.append(pick)
    return {
        "acc": np.stack(columns, axis=1).astype(np.int64),
        "multiplier": multiplier,
        "shift": shift,
        "zero_point": 5,
        "act_min": -128,
        "act_max": 127,
    }


def baseline_layer(images: int = 16) -> dict:
    """The first convolution of the baseline's int8 file (`TrainConfig()`, integer_only): its int32
    accumulators for the first test images, its multipliers, shifts, zero point and ReLU clamp.

    Returns:
        the arguments of a requantize function as a dict (acc int64 (images, h, w, channels)), plus
        "expected": the engine's int8 output (`IntegerModel.requantize`, bit-exact with LiteRT).
    """
    tflite = artifacts.quantized(fit.TrainConfig(), "integer_only", progress=False)
    engine = intmath.IntegerModel(tflite)
    step = next(s for s in engine.steps if s.op.name == "CONV_2D")
    acc = engine.accumulate(step, engine.quantize_input(data.load().x_test[:images]))
    p = step.params
    return {
        "acc": acc,
        "multiplier": p["multiplier"],
        "shift": p["shift"],
        "zero_point": int(p["output_zero_point"]),
        "act_min": int(p["act_min"]),
        "act_max": int(p["act_max"]),
        "expected": engine.requantize(step, acc),
    }


def requantize_truth(acc, multiplier, shift, zero_point, act_min, act_max) -> np.ndarray:
    """LiteRT's builtin rule on x86-64: fixed-point multiply with ties up, zero point, clamp.

    Returns:
        int8 array of the shape of `acc`.
    """
    scaled = fixedpoint.multiply_by_quantized_multiplier(acc, multiplier, shift, ties="up")
    return np.clip(scaled + zero_point, act_min, act_max).astype(np.int8)


def _requantize_slips(acc, multiplier, shift, zero_point, act_min, act_max) -> dict:
    """{message: the int8 values that slip gives} for one layer."""
    up = fixedpoint.multiply_by_quantized_multiplier(acc, multiplier, shift, ties="up")
    away = fixedpoint.multiply_by_quantized_multiplier(acc, multiplier, shift, ties="away")
    high = fixedpoint.rounding_doubling_high_mul(acc, multiplier, ties="up")
    clip = lambda v: np.clip(v, act_min, act_max)  # noqa: E731
    once = arith.round_half_away(acc * (multiplier * 2.0 ** (shift - 31)))
    return {
        "you left out the output zero point: real 0.0 is the integer zero_point.": clip(up),
        "you clamped before adding the zero point: the clamp bounds are in output integers, zero "
        "point included.": fixedpoint.wrap32(clip(up) + zero_point).astype(np.int8),
        "exact halves went away from zero (gemmlowp's rule, TFLite's reference kernels); "
        "LiteRT's builtin kernels on x86-64 round them up (ties='up', "
        "ruy).": clip(away + zero_point),
        "you rounded once, in float (the float shortcut); the runtime rounds twice, after the "
        "high multiply and in the shift.": clip(once + zero_point),
        "the shift truncated (>> without rounding); the runtime's right shift rounds to "
        "nearest.": clip((high >> np.maximum(-shift, 0)) + zero_point),
        "values past the clamp wrapped around in the cast: clip to [act_min, act_max] first.": (
            up + zero_point
        ).astype(np.int8),
    }


@feedback.checked("06", hint=REQUANTIZE_HINT)
def check_requantize(requantize):
    """Check the learner's `requantize(acc, multiplier, shift, zero_point, act_min, act_max)` on a
    synthetic layer full of exact halves (against `requantize_truth`) and on the baseline's first
    convolution (against the engine's output, which equals LiteRT's).

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a value or the dtype differs (named slips: no zero point, clamp before the zero
            point, ties away from zero, one float rounding, a truncating shift, no clamp).
        Unanswered: the function still returns the placeholder.
    """
    layers = {
        "a layer with no activation and zero point 5": synthetic_layer(),
        "conv1 of the baseline's int8 file (fused ReLU)": baseline_layer(),
    }
    for what, layer in layers.items():
        args = {k: v for k, v in layer.items() if k != "expected"}
        expected = layer.get("expected", requantize_truth(**args))
        got = feedback.answered(requantize(**{k: np.copy(v) for k, v in args.items()}))
        got = np.asarray(got)
        if got.shape == expected.shape and np.array_equal(got, expected):
            if got.dtype != np.int8:
                raise Wrong(
                    f"{what}: the values are right but of dtype {got.dtype}; the output tensor is "
                    "int8.",
                    "finish with .astype(np.int8)",
                )
            continue
        if got.shape == expected.shape:
            for message, candidate in _requantize_slips(**args).items():
                if np.array_equal(got, np.asarray(candidate)):
                    raise Wrong(f"{what}: {message}", REQUANTIZE_HINT)
        feedback.expect_close(
            got, expected, f"the int8 outputs of {what}", rtol=0, atol=0, hint=REQUANTIZE_HINT
        )
    sizes = " and ".join(f"{layer['acc'].size:,}" for layer in layers.values())
    return (
        f"all {sizes} outputs match: the ties on the synthetic layer round up as in ruy, and "
        "conv1's equal LiteRT's builtin kernels bit for bit."
    )


# -- an int8 dot product ---------------------------------------------------------------------------
DOT_HINT = (
    "cast to a wide type first (np.int32 or np.int64), subtract each zero point, multiply, sum, "
    "add the bias: Σ (q_x − x_zero_point) · (q_w − w_zero_point) + bias; compare with "
    "qlab.intmath.integer_ops.fully_connected_accumulate"
)


def dot_cases() -> dict:
    """The dot products `check_int8_dot` tries.

    Returns:
        {description: (q_x, x_zero_point, q_w, w_zero_point, bias)}: a unit of the baseline's
        `dense` layer on a test image's int8 input (weights symmetric, zero point 0), and a
        synthetic one of depth 576 with a weight zero point of 3 (asymmetric, as in uint8 models).
    """
    tflite = artifacts.quantized(fit.TrainConfig(), "integer_only", progress=False)
    engine = intmath.IntegerModel(tflite)
    run = engine.run(engine.quantize_input(data.load().x_test[:1]))
    dense = next(s for s in engine.steps if s.op.name == "FULLY_CONNECTED")
    p = dense.params
    x = run.tensors[dense.op.inputs[0]].reshape(-1)
    rng = np.random.default_rng(61)
    return {
        f"unit 0 of the baseline's {dense.layer!r} layer on test image 0": (
            x,
            int(p["input_zero_point"]),
            p["weights"][0],
            int(p["weights_zero_point"]),
            int(p["bias"][0]),
        ),
        "a synthetic unit of depth 576, weight zero point 3": (
            rng.integers(-128, 128, 576).astype(np.int8),
            -128,
            rng.integers(-128, 128, 576).astype(np.int8),
            3,
            int(rng.integers(-5000, 5000)),
        ),
    }


def _dot_slips(q_x, zx, q_w, zw, bias) -> dict:
    x, w = q_x.astype(np.int64), q_w.astype(np.int64)
    wrap8 = lambda v: (np.asarray(v, np.int64) + 128) % 256 - 128  # noqa: E731
    return {
        "you left out the input's zero point.": int(np.sum(x * (w - zw)) + bias),
        "you left out the weights' zero point.": int(np.sum((x - zx) * w) + bias),
        "you added the zero points; a real value is (q − zero_point) · scale.": int(
            np.sum((x + zx) * (w + zw)) + bias
        ),
        "you left out the bias.": int(np.sum((x - zx) * (w - zw))),
        "your arithmetic stayed in int8 and wrapped around (q − (−128) does not fit in int8): "
        "cast to np.int32 first.": int(np.sum(wrap8(wrap8(x - zx) * wrap8(w - zw))) + bias),
    }


@feedback.checked("06", hint=DOT_HINT)
def check_int8_dot(dot):
    """Check the learner's `dot(q_x, x_zero_point, q_w, w_zero_point, bias)` against
    `qlab.intmath.integer_ops.fully_connected_accumulate` on `dot_cases()`.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a result differs (named slips: a zero point left out or added, no bias, int8
            wrap-around) or is not a whole number.
        Unanswered: the function still returns the placeholder.
    """
    cases = dot_cases()
    for what, (q_x, zx, q_w, zw, bias) in cases.items():
        expected = int(
            integer_ops.fully_connected_accumulate(q_x, zx, q_w[np.newaxis], np.array([bias]), zw)[
                0, 0
            ]
        )
        got = np.asarray(feedback.answered(dot(q_x.copy(), zx, q_w.copy(), zw, bias)))
        if got.size != 1 or not float(got.reshape(-1)[0]).is_integer():
            raise Wrong(
                f"{what}: expected one whole number (the int32 accumulator), got {got!r}.", DOT_HINT
            )
        got = int(got.reshape(-1)[0])
        if got == expected:
            continue
        slips = {
            value: message
            for message, value in _dot_slips(q_x, zx, q_w, zw, bias).items()
            if value != expected
        }
        raise Wrong(
            f"{what}: expected {expected:,}, got {got:,}. {slips.get(got, '')}".rstrip(), DOT_HINT
        )
    return (
        "both accumulators match fully_connected_accumulate: int8 codes, zero points subtracted "
        "in a wide type, products summed with the bias in int32."
    )
