"""Checked exercises of notebook 04 (histograms and buckets): the per-channel scales of a weight
tensor as TFLite's converter chooses them, the levels a tensor uses on a grid, and a tensor's error
split into rounding and clipping.

Each check runs the learner's function on small arrays chosen to catch the usual slips and compares
it with `qlab.analysis.grid` and `qlab.analysis.buckets`, computed when the check runs; given a pair
of a deployed model and its float reference, `check_per_channel_scales` also compares with the
scales stored in the `.tflite`.
"""

from __future__ import annotations

import numpy as np

from qlab import arith
from qlab.analysis import buckets, grid
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

SCALES_HINT = (
    "TFLite's int8 weights are symmetric and narrow (levels -127..127, zero point 0), one scale "
    "per output channel, and the output channel is axis 0 of the file's layout (out, kh, kw, "
    "in): scale = max|w| over each channel / 127"
)


def _weights() -> np.ndarray:
    """Weights in the file's layout (out, kh, kw, in) = (6, 3, 3, 4): channel 2 has a negative
    outlier, channel 4 is small, so that per-tensor, min/max and max|w| answers differ."""
    w = np.random.default_rng(4).normal(0.0, 0.1, (6, 3, 3, 4))
    w[2, 1, 1, 0] = -0.8
    w[4] *= 0.05
    return w.astype(np.float32)


def _scale_slips(w: np.ndarray, got: np.ndarray) -> None:
    """Raise Wrong naming the slip if `got` is a known wrong set of scales for `w`."""
    flat = np.abs(w.reshape(len(w), -1))
    m = flat.max(axis=1)
    if got.size == 1:
        raise Wrong(
            "you returned one scale for the whole tensor; the converter gives each output "
            f"channel its own ({len(w)} here).",
            SCALES_HINT,
        )
    if got.shape != (len(w),):
        raise Wrong(
            f"you returned scales of shape {got.shape}; expected ({len(w)},): in the file's "
            "layout the output channel is the first axis (Keras puts it last).",
            SCALES_HINT,
        )
    known = {
        "you divided by 128; the weights' grid is narrow, -127..127, so that it is symmetric: "
        "divide by 127.": m / 128,
        "you divided by 255 (or spread 256 levels over [-max, max]); weights use 255 levels, "
        "-127..127, so the step is max|w| / 127.": m / 255,
        "you used each channel's max, not its largest |w|: a large negative weight must fit "
        "too.": w.reshape(len(w), -1).max(axis=1) / 127,
        "you fitted min..max (an asymmetric grid); weights are symmetric: scale = max|w| / 127.": (
            w.reshape(len(w), -1).max(axis=1) - w.reshape(len(w), -1).min(axis=1)
        )
        / 254,
    }
    for message, candidate in known.items():
        if np.allclose(got, candidate, rtol=1e-5):
            raise Wrong(message, SCALES_HINT)


@feedback.checked("04", hint=SCALES_HINT)
def check_per_channel_scales(per_channel_scales, pair=None):
    """Check the learner's `per_channel_scales(w) -> scales` (w in the file's layout, output channel
    first) against `qlab.analysis.grid.weights` and, given a `qlab.analysis.capture.Pair`, against
    the scales stored in the deployed `.tflite` for every layer with per-channel weights.

    Args:
        pair: `capture.pair(deployed, float reference)` of an int8 model (optional).
    Returns:
        the message for a right answer.
    Raises:
        Wrong: a scale differs (the message names the slip: one scale per tensor, the wrong axis,
            128 or 255 instead of 127, max instead of max|w|, an asymmetric range).
        Unanswered: the function returns a placeholder.
    """
    w = _weights()
    got = np.asarray(feedback.answered(per_channel_scales(w.copy())), np.float64)
    _scale_slips(w, got)
    feedback.expect_close(got, grid.weights(w).scale, "the scales", rtol=1e-6, hint=SCALES_HINT)
    if pair is None:
        return "every channel's scale matches qlab.analysis.grid.weights (the converter's rule)."
    layers = []
    for name in buckets.weight_table(pair).layer:
        w, g = buckets.layer_weights(pair, name)
        if not g.per_axis:
            continue
        got = np.asarray(feedback.answered(per_channel_scales(w.copy())), np.float64)
        _scale_slips(w, got)
        feedback.expect_close(
            got, g.scale, f"the scales of {name}, against the .tflite,", rtol=1e-6, hint=SCALES_HINT
        )
        layers.append(name)
    return (
        f"every scale matches qlab.analysis.grid.weights, and the scales stored in the .tflite for "
        f"{len(layers)} layers ({', '.join(layers)}) to float32 precision."
    )


LEVELS_HINT = (
    "put every value on the grid first: q = clip(round(x / scale) + zero_point, -128, 127) "
    "(qlab.arith.quantize), then count the distinct q: np.unique(q).size"
)
LEVEL_CASES = (
    (
        np.random.default_rng(5).normal(0.0, 1.0, 2000),
        0.01,
        3,
    ),  # a bell: many values per level, tails clipped
    (
        np.random.default_rng(6).exponential(0.4, 300),
        0.005,
        -128,
    ),  # a ReLU-like output: few values, a tail clipped
)


@feedback.checked("04", hint=LEVELS_HINT)
def check_levels_used(levels_used):
    """Check the learner's `levels_used(x, scale, zero_point) -> int` (an int8 per-tensor grid,
    -128..127) against `qlab.analysis.buckets.used_levels` on `LEVEL_CASES`.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a count differs (named slips: distinct values counted, no clipping, floor).
        Unanswered: the function returns a placeholder.
    """
    for x, scale, zero_point in LEVEL_CASES:
        g = grid.Grid(8, np.array([scale]), np.array([zero_point]))
        got = feedback.answered(levels_used(x.copy(), scale, zero_point))
        expected = int(buckets.used_levels(x, g)[0])
        if np.ndim(got) != 0:
            raise Wrong(
                f"your function returned an array of shape {np.shape(got)}; return one number, the "
                "count of levels used.",
                LEVELS_HINT,
            )
        got = feedback.whole(got, "the count of levels used", LEVELS_HINT)
        if got == expected:
            continue
        what = (
            f"for scale {scale}, zero point {zero_point} you counted {got} levels; qlab counts "
            f"{expected}"
        )
        v = x / scale + zero_point
        if got == np.unique(x).size:
            raise Wrong(
                f"{what}: you counted distinct values, not levels; many values share a level.",
                LEVELS_HINT,
            )
        if got == np.unique(np.round(v)).size:
            raise Wrong(
                f"{what}: values beyond the range land on -128 or 127; clip before counting.",
                LEVELS_HINT,
            )
        if got == np.unique(np.clip(np.floor(v), -128, 127)).size:
            raise Wrong(
                f"{what}: you rounded down; a value goes to the nearest level.", LEVELS_HINT
            )
        raise Wrong(f"{what}.", LEVELS_HINT)
    return (
        f"both counts match qlab.analysis.buckets.used_levels ({len(LEVEL_CASES)} tensors, "
        "clipped tails included)."
    )


SPLIT_HINT = (
    "clipping is what clip() removes: x - g.clip(x); rounding is what is left of the total error "
    "x - g.round_trip(x): g.clip(x) - g.round_trip(x). Return the mean of each squared, "
    "(rounding_mse, clipping_mse), in real units"
)


def _split_case() -> tuple[np.ndarray, grid.Grid]:
    """Values with long tails, and a grid fitted to their central 98 % (so 2 % are clipped)."""
    x = np.random.default_rng(7).standard_t(3, 4000)
    lo, hi = np.percentile(x, [1, 99])
    g = grid.activations(range=(float(lo), float(hi)))
    near_end = np.minimum(np.abs(x - g.low[0]), np.abs(x - g.high[0])) < 0.01 * g.scale[0]
    return x[
        ~near_end
    ], g  # nothing within a hundredth of a step of an end: no doubt what is clipped


@feedback.checked("04", hint=SPLIT_HINT)
def check_error_split(rounding_and_clipping):
    """Check the learner's `rounding_and_clipping(x, g) -> (rounding_mse, clipping_mse)` (g a
    per-tensor `qlab.analysis.grid.Grid`) against `qlab.analysis.buckets.split`.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a value differs (named slips: the total error counted as rounding, the two
            swapped, root-mean-square instead of mean square, rounding from the unclipped values).
        Unanswered: the function returns a placeholder.
    """
    x, g = _split_case()
    answer = feedback.answered(rounding_and_clipping(x.copy(), g))
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Wrong(
            f"your function returned {type(answer).__name__}; return a pair (rounding_mse, "
            "clipping_mse).",
            SPLIT_HINT,
        )
    got = tuple(float(np.asarray(feedback.answered(v))) for v in answer)
    truth = buckets.split(x, g)
    expected = (truth["rounding_mse"], truth["clipping_mse"])
    if np.allclose(got, expected, rtol=1e-6):
        return (
            f"rounding {got[0]:.3g} and clipping {got[1]:.3g} (mean squared, real units) match "
            f"qlab.analysis.buckets.split; {100 * truth['clipped_fraction']:.1f} % of the values "
            "are clipped and carry most of the error."
        )
    total = truth["total_mse"]
    known = {
        "your rounding error is the whole error x - round_trip(x), clipping included; take the "
        "clipped part out.": (
            total,
            expected[1],
        ),
        "the two are swapped: return (rounding_mse, clipping_mse).": expected[::-1],
        "those are root-mean-square errors; the split adds up in mean squares (no square "
        "root).": tuple(np.sqrt(expected)),
        "your rounding error rounds the values themselves, x - round(x / scale) * scale, not the "
        "clipped values: for a clipped value that is not rounding.": (
            _unclipped_rounding(x, g),
            expected[1],
        ),
    }
    for message, candidate in known.items():
        if np.allclose(got, candidate, rtol=1e-6):
            raise Wrong(message, SPLIT_HINT)
    raise Wrong(
        f"you got rounding {got[0]:.4g} and clipping {got[1]:.4g}; qlab.analysis.buckets.split "
        f"gives {expected[0]:.4g} and {expected[1]:.4g}.",
        SPLIT_HINT,
    )


def _unclipped_rounding(x: np.ndarray, g: grid.Grid) -> float:
    """The rounding mse of the unclipped values on an unbounded grid (a slip)."""
    s, z = g.scale[0], g.zero_point[0]
    return float(np.mean((x - arith.dequantize(np.round(x / s + z), s, z)) ** 2))
