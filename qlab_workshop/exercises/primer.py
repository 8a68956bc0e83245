"""Checked exercises of notebook 00 (the primer): integers from real values by hand, a grid's scale
and zero point for a range, and fake-quant.

Each check runs the learner's function on a few small arrays chosen to catch the usual slips (exact
halves, values beyond the range, a range that leaves out 0) and compares it with `qlab.arith` and
`qlab.analysis.grid`, computed when the check runs. NumPy only: the primer loads no TensorFlow.
`explain_int8` also serves notebook 02's input-quantization check.
"""

from __future__ import annotations

import numpy as np

from qlab import arith
from qlab.analysis import grid
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

# (values, scale, zero point): halves of a step (0.125 / 0.25 = 0.5), values far beyond the range,
# negatives, and a second grid so that nothing typed for the first one passes
CASES = (
    (np.array([0.0, 0.125, -0.375, 0.625, -0.625, 1.0, -2.0, 40.0, -40.0, 31.9]), 0.25, -3),
    (np.linspace(-7.0, 9.0, 41), 0.05, 10),
)
ROUNDING_HINT = (
    "q = round(x / scale) + zero_point, halves away from zero (qlab.arith.round_half_away), "
    "then clip to -128..127 and cast with .astype(np.int8)"
)


def explain_int8(
    got,
    x,
    scale,
    zero_point,
    what: str = "the int8 values",
    mistakes: dict | None = None,
    hint: str = ROUNDING_HINT,
) -> None:
    """Compare integers the learner computed from `x` with `qlab.arith.quantize`'s, naming the slip.

    Args:
        got: the learner's integers (any array-like); None or ... means unanswered.
        x: the real values they were computed from.
        scale, zero_point: the per-tensor grid (int8, -128..127).
        what: what the values are, for the messages.
        mistakes: more {message: the integers that slip gives}, tried before the usual ones.
        hint: the hint of a wrong verdict.
    Returns:
        None when every value is right and the dtype is int8.
    Raises:
        Unanswered: `got` is a placeholder.
        Wrong: a value differs (the message names the slip when it is a known one: no zero point,
            rounding halves to even, floor or truncation, no clipping, wrap-around in the cast,
            multiplying by the scale) or the dtype is not int8.
    """
    got = np.asarray(feedback.answered(got))
    x = np.asarray(x, np.float64)
    qmin, qmax = arith.integer_range(np.int8)
    expected = arith.quantize(x, scale, zero_point, qmin, qmax)
    if got.shape != x.shape:
        raise Wrong(
            f"{what} have shape {got.shape}; expected {x.shape}, one integer per value.", hint
        )
    if got.dtype.kind not in "iu":
        if got.dtype.kind == "f" and np.array_equal(got, expected):
            raise Wrong(
                f"{what} are right but stored as {got.dtype}; an int8 tensor holds integers.",
                "finish with .astype(np.int8)",
            )
        if got.dtype.kind != "f":
            raise Wrong(f"{what} are not numbers (dtype {got.dtype}).", hint)
    if np.array_equal(got, expected):
        if got.dtype != np.int8:
            raise Wrong(
                f"{what} are right but of dtype {got.dtype}; LiteRT's int8 tensors take np.int8.",
                "finish with .astype(np.int8)",
            )
        return
    v = x / scale

    def clip(q):
        return np.clip(q, qmin, qmax)

    known = dict(mistakes or {})
    known.update(
        {
            "you left out the zero point: 0.0 must land on the integer zero_point, not on 0.": clip(
                arith.round_half_away(v)
            ),
            "you subtracted the zero point; quantizing adds it (dequantizing subtracts it).": clip(
                arith.round_half_away(v) - zero_point
            ),
            "exact halves went to the even neighbour (np.round / np.rint); TFLite rounds halves "
            "away from zero.": clip(arith.round_half_even(v) + zero_point),
            "you rounded down (np.floor); quantizing rounds to the nearest integer.": clip(
                np.floor(v) + zero_point
            ),
            "you truncated towards zero (int() or .astype before rounding); quantizing rounds to "
            "the nearest.": clip(np.trunc(v) + zero_point),
            "values beyond the range wrapped around in the cast (130 became -126): clip to "
            "-128..127 first.": (arith.round_half_away(v) + zero_point)
            .astype(np.int64)
            .astype(np.int8),
            "values beyond the range were not clipped: an int8 holds -128..127 "
            "only.": arith.round_half_away(v) + zero_point,
            "you multiplied by the scale; quantizing divides by it (the scale is real units per "
            "step).": clip(arith.round_half_away(x * scale) + zero_point),
        }
    )
    for message, candidate in known.items():
        if np.array_equal(got, np.asarray(candidate)):
            raise Wrong(f"{what} differ from qlab.arith.quantize: {message}", hint)
    feedback.expect_close(got, expected, what, rtol=0, atol=0, hint=hint)


@feedback.checked("00", hint=ROUNDING_HINT)
def check_to_int8(to_int8):
    """Check the learner's `to_int8(x, scale, zero_point)` against `qlab.arith.quantize` on `CASES`.

    Returns:
        the message for a right answer.
    Raises:
        Wrong, Unanswered: as `explain_int8`.
    """
    for x, scale, zero_point in CASES:
        explain_int8(
            to_int8(x.copy(), scale, zero_point),
            x,
            scale,
            zero_point,
            f"the int8 values for scale {scale}, zero point {zero_point}",
        )
    return (
        f"all {sum(x.size for x, _, _ in CASES)} values match qlab.arith.quantize, halves and "
        "clipped values included."
    )


RANGES = ((0.0, 6.0), (-1.0, 3.0), (-0.5, 0.25), (0.5, 2.0), (-3.0, -1.0))
"""Ranges to choose a grid for: a ReLU6 output, mixed signs, and two that leave 0 out."""
GRID_HINT = (
    "widen the range to include 0, then scale = (max - min) / 255 (256 levels, 255 steps) and "
    "zero_point = round(-128 - min / scale), an integer in -128..127; compare with "
    "qlab.analysis.grid.fit(range=(min, max))"
)


def _grid_slips(lo: float, hi: float) -> dict:
    """{message: (scale, zero point)} of the usual slips for one range."""
    wide_lo, wide_hi = min(lo, 0.0), max(hi, 0.0)
    right = (wide_hi - wide_lo) / 255
    narrow = (hi - lo) / 255
    return {
        "the range must include 0 (so that 0.0 is exact): widen min down to 0 or max up to 0 "
        "first.": (
            narrow,
            round(-128 - lo / narrow),
        ),
        "256 levels have 255 steps between them: divide by 255, not 256.": (
            (wide_hi - wide_lo) / 256,
            round(-128 - wide_lo / ((wide_hi - wide_lo) / 256)),
        ),
        "that zero point is uint8's (levels 0..255); int8 levels start at -128: zero_point = "
        "-128 - min / scale.": (
            right,
            round(-wide_lo / right),
        ),
        "the zero point's sign is flipped: zero_point = -128 - min / scale.": (
            right,
            -round(-128 - wide_lo / right),
        ),
    }


@feedback.checked("00", hint=GRID_HINT)
def check_scale_zero_point(choose):
    """Check the learner's `choose(lo, hi) -> (scale, zero_point)` against `grid.fit(range=(lo,
    hi))` (asymmetric int8, the converter's activation grid) on `RANGES`.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a scale or zero point differs (the message names the range and the slip), or not
            a pair.
        Unanswered: the function returns a placeholder.
    """
    for lo, hi in RANGES:
        answer = feedback.answered(choose(lo, hi))
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(
                f"for range [{lo}, {hi}] your function returned {answer!r}; return a pair "
                "(scale, zero_point).",
                GRID_HINT,
            )
        scale, zero_point = (float(np.asarray(v)) for v in answer)
        g = grid.fit(range=(lo, hi))
        want_scale, want_zp = float(g.scale[0]), int(g.zero_point[0])
        if np.isclose(scale, want_scale, rtol=1e-6) and zero_point == want_zp:
            continue
        for message, (s, z) in _grid_slips(lo, hi).items():
            if np.isclose(scale, s, rtol=1e-6) and np.isclose(zero_point, z):
                raise Wrong(f"range [{lo}, {hi}]: {message}", GRID_HINT)
        if np.isclose(scale, want_scale, rtol=1e-6) and zero_point != round(zero_point):
            raise Wrong(
                f"range [{lo}, {hi}]: zero point {zero_point} is not an integer; a zero point is "
                "the integer that stands for 0.0: round it.",
                GRID_HINT,
            )
        raise Wrong(
            f"range [{lo}, {hi}]: expected scale {want_scale:.6g} and zero point {want_zp} "
            f"(grid.fit), got scale {scale:.6g} and zero point {zero_point:g}.",
            GRID_HINT,
        )
    return (
        f"all {len(RANGES)} ranges give grid.fit's scale and zero point, the two without 0 "
        "included."
    )


FAKE_QUANT_HINT = (
    "fake-quant = dequantize(quantize(x)): q = clip(round(x / scale) + zero_point, -128, 127), "
    "then (q - zero_point) * scale, in float (qlab.arith.quantize and qlab.arith.dequantize)"
)


@feedback.checked("00", hint=FAKE_QUANT_HINT)
def check_fake_quant(fake_quant):
    """Check the learner's `fake_quant(x, scale, zero_point)` against `Grid.round_trip` on `CASES`.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: values differ (named slips: integers returned, no clipping, the zero point left out
            of the dequantize, the input returned unchanged).
        Unanswered: the function returns a placeholder.
    """
    for x, scale, zero_point in CASES:
        got = np.asarray(feedback.answered(fake_quant(x.copy(), scale, zero_point)))
        q = arith.quantize(x, scale, zero_point, -128, 127)
        expected = arith.dequantize(q, scale, zero_point)
        what = f"the fake-quantized values for scale {scale}, zero point {zero_point}"
        if got.shape == x.shape and got.dtype.kind in "iuf":
            slips = {
                "these are the integers q: fake-quant goes on to dequantize them back to real "
                "values.": q,
                "values beyond the grid's range were not clipped to its end "
                "levels.": arith.round_half_away(x / scale) * scale,
                "the dequantize left out the zero point: real = (q - zero_point) * scale.": q
                * scale,
                "the values came back unchanged: fake-quant moves each value onto the nearest "
                "level.": x,
            }
            if not np.allclose(got, expected):
                for message, candidate in slips.items():
                    if np.allclose(got, candidate):
                        raise Wrong(f"{what}: {message}", FAKE_QUANT_HINT)
        feedback.expect_close(got, expected, what, rtol=1e-6, atol=1e-9, hint=FAKE_QUANT_HINT)
    return (
        "every value lands on the grid, clipped values on its end levels, as Grid.round_trip "
        "puts them."
    )
