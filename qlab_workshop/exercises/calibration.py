"""Checked exercises of notebook 12 (calibration): draw a class-balanced calibration set, choose a
percentile range, and build the grid ai-edge-quantizer (AEQ) gives a range.

The truth is computed when a check runs: LiteRT's accuracy of the files the converter makes from
the learner's draw and from the whole training split (`qlab.artifacts.quantized`,
`qlab.tflite.measure`), `qlab.analysis.ranges.percentile` and `qlab.analysis.ranges.aeq_grid` on
small arrays made here.
"""

from __future__ import annotations

import numpy as np

from qlab import artifacts
from qlab.analysis import ranges
from qlab.tflite import measure
from qlab.training import data
from qlab.training.fit import TrainConfig
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

PER_CLASS = 2
"""Images per class `check_balanced_draw` asks the learner's draw for."""
BAND_PP = 1.0
"""How close (percentage points) the balanced draw's accuracy must come to full calibration's."""
MODE = "integer_only"  # the converter's mode the draw calibrates (min-max ranges)

DRAW_HINT = (
    "for each class c: idx = np.flatnonzero(y == c), pick per_class of them with "
    "np.random.default_rng(seed).choice(idx, per_class, replace=False), and return x[all picked]"
)


def _rows(x: np.ndarray) -> dict[bytes, int]:
    """{the bytes of one sample: its index in `x`}, to find where each drawn image came from."""
    return {np.ascontiguousarray(s, np.float32).tobytes(): i for i, s in enumerate(x)}


def _training_rows(got: np.ndarray, dataset: data.Dataset, want: int) -> list[int]:
    """The index in the training split of each drawn image; raises Wrong if some are not training
    images (saying how many are test images) or if some repeat."""
    where = _rows(dataset.x_train)
    found = [where.get(np.ascontiguousarray(s, np.float32).tobytes()) for s in got]
    if any(i is None for i in found):
        missing = sum(i is None for i in found)
        test = _rows(dataset.x_test)
        from_test = sum(np.ascontiguousarray(s, np.float32).tobytes() in test for s in got)
        raise Wrong(
            f"{missing} of your {want} images are not in the training split"
            + (
                f" ({from_test} are test images: calibrating on them leaks the test set)"
                if from_test
                else ""
            )
            + "; draw from the x you are given."
        )
    if len(set(found)) < want:
        raise Wrong(
            f"only {len(set(found))} of your {want} images are distinct: draw without replacement "
            "(replace=False)."
        )
    return found


@feedback.checked("12", hint=DRAW_HINT)
def check_balanced_draw(draw, config: TrainConfig | None = None):
    """Checks `draw(x, y, per_class, seed) -> images`: `PER_CLASS` distinct training images of every
    class, drawn with the seed, whose converter file (`MODE`) is within `BAND_PP` of the file
    calibrated on the whole training split (both run on LiteRT over the test split).

    Args:
        config: the float model to calibrate (default: notebook 01's `TrainConfig()`, cached).

    Returns:
        the message for a right answer: both accuracies.

    Raises:
        Wrong: not an array of samples; the wrong number of images; images not from the training
            split (e.g. test images), repeated, or unbalanced; the same images for two seeds; an
            accuracy outside the band.
        Unanswered: the function returns a placeholder.
    """
    config = config or TrainConfig()
    dataset = data.load(config.dataset)
    x, y = dataset.x_train, dataset.y_train
    classes = np.unique(y)
    want = PER_CLASS * len(classes)
    got = feedback.answered(draw(x.copy(), y.copy(), PER_CLASS, 0))
    got = np.asarray(got)
    if got.dtype.kind not in "fiu" or got.shape[1:] != x.shape[1:]:
        raise Wrong(
            f"return the images themselves, an array of shape (n,) + {x.shape[1:]}; got shape "
            f"{got.shape} and dtype {got.dtype} (labels or indices?)."
        )
    if len(got) != want:
        raise Wrong(
            f"you returned {len(got)} images; expected {PER_CLASS} per class × {len(classes)} "
            f"classes = {want}."
        )
    found = _training_rows(got, dataset, want)
    counts = {int(c): int(np.sum(y[found] == c)) for c in classes}
    if set(counts.values()) != {PER_CLASS}:
        raise Wrong(
            f"images per class: {counts}; a balanced draw has {PER_CLASS} of every class.",
            "draw inside each class (y == c), not from the whole split",
        )
    other = np.asarray(feedback.answered(draw(x.copy(), y.copy(), PER_CLASS, 1)))
    if other.shape == got.shape and np.array_equal(other, got):
        raise Wrong(
            "seeds 0 and 1 give the same images: draw at random, with the seed "
            "(np.random.default_rng(seed)), so that the spread over draws can be measured."
        )
    drawn = artifacts.quantized(config, MODE, np.asarray(got, np.float32), dataset, progress=False)
    full = artifacts.quantized(config, MODE, np.asarray(x, np.float32), dataset, progress=False)
    mine, all_ = (100 * measure.accuracy(t, dataset.x_test, dataset.y_test) for t in (drawn, full))
    if abs(mine - all_) > BAND_PP:
        raise Wrong(
            f"your {want} images give {mine:.2f} % on LiteRT against full calibration's "
            f"{all_:.2f} %, more than {BAND_PP} pp apart; are they scaled like the training images?"
        )
    return (
        f"{want} images, {PER_CLASS} of each class, all from the training split: {MODE} gives "
        f"{mine:.2f} % on LiteRT, full calibration ({len(x)} images) {all_:.2f} % "
        f"({mine - all_:+.2f} pp)."
    )


PERCENTILES = (99.0, 99.9, 100.0)
"""The percentiles `check_percentile_range` asks for (100 is min-max)."""
PERCENTILE_HINT = (
    "low = np.percentile(values, 100 - p), high = np.percentile(values, p): cut both tails "
    "(qlab.analysis.ranges.percentile)"
)


def _samples() -> dict[str, np.ndarray]:
    """Activation-like values made when the check runs: two-sided with heavy tails, and a ReLU
    output (many exact zeros)."""
    rng = np.random.default_rng(12)
    two_sided = rng.standard_t(3, 20000) * 1.5 + 0.3
    return {
        "a two-sided tensor": two_sided,
        "a ReLU output": np.maximum(rng.normal(0.2, 1.0, 20000), 0.0),
    }


@feedback.checked("12", hint=PERCENTILE_HINT)
def check_percentile_range(percentile_range):
    """Checks `percentile_range(values, p) -> (low, high)` against `qlab.analysis.ranges.percentile`
    (and `ranges.minmax` at p = 100) on a two-sided tensor and a ReLU output, for `PERCENTILES`.

    Returns:
        the message for a right answer.

    Raises:
        Wrong: not a pair, or an end differs (named slips: the low end left at the minimum, both
            ends at the p-th percentile, a range made symmetric around 0).
        Unanswered: the function returns a placeholder.
    """
    for what, values in _samples().items():
        for p in PERCENTILES:
            answer = feedback.answered(percentile_range(values.copy(), p))
            if not isinstance(answer, (tuple, list, np.ndarray)) or len(answer) != 2:
                raise Wrong(
                    f"for {what} and p = {p:g} your function returned {answer!r}; return a pair "
                    "(low, high)."
                )
            low, high = (float(np.asarray(v)) for v in answer)
            want = ranges.percentile(values, p)
            if np.allclose((low, high), want, rtol=1e-9, atol=1e-12):
                continue
            top = float(np.percentile(np.abs(values), p))
            if np.isclose(low, values.min()) and np.isclose(high, want[1]):
                raise Wrong(
                    f"{what}, p = {p:g}: your low end is the minimum, {low:.4g}; cut the low tail "
                    f"too, at the (100 − p)-th percentile ({want[0]:.4g})."
                )
            if np.isclose(low, high):
                raise Wrong(
                    f"{what}, p = {p:g}: low and high are both {low:.4g}; the low end is the "
                    "(100 − p)-th percentile, not the p-th."
                )
            if np.allclose((low, high), (-top, top)):
                raise Wrong(
                    f"{what}, p = {p:g}: you made the range symmetric, ±{top:.4g}; a percentile "
                    f"range cuts each tail where it is: expected ({want[0]:.4g}, {want[1]:.4g})."
                )
            raise Wrong(
                f"{what}, p = {p:g}: expected ({want[0]:.6g}, {want[1]:.6g}) "
                f"(qlab.analysis.ranges.percentile), got ({low:.6g}, {high:.6g})."
            )
    return (
        "every range equals qlab.analysis.ranges.percentile at p = "
        f"{', '.join(f'{p:g}' for p in PERCENTILES)} (100 is min-max), on a two-sided tensor and "
        "on a ReLU output."
    )


GRID_RANGES = (
    (0.0, 6.3, 8),
    (-1.7, 3.2, 8),
    (0.5, 2.0, 8),
    (-3.0, -1.0, 8),
    (-1.7, 3.2, 4),
    (0.0, 11.99, 16),
)
"""(low, high, bits): a ReLU output, mixed signs, two ranges that leave 0 out, and 4 and 16 bits."""
GRID_HINT = (
    "bound_min = min(low, 0), bound_max = max(high, 0); qmin = -2**(bits-1), qmax = 2**(bits-1) "
    "- 1; scale = (bound_max - bound_min) / (qmax - qmin); zero_point = round(qmin - bound_min / "
    "scale)"
)


def _grid_slips(low: float, high: float, bits: int) -> dict[str, tuple[float, float]]:
    """{message: (scale, zero point)} of the usual slips for one range."""
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    lo, hi = min(low, 0.0), max(high, 0.0)
    right = (hi - lo) / (qmax - qmin)
    narrow = (high - low) / (qmax - qmin)
    return {
        "the range must include 0 (so that 0.0 is exact): stretch low down to 0 or high up to 0 "
        "first.": (
            narrow,
            round(qmin - low / narrow),
        ),
        f"{1 << bits} levels have {(1 << bits) - 1} steps: divide by qmax − qmin, not 2**bits.": (
            (hi - lo) / (1 << bits),
            round(qmin - lo / ((hi - lo) / (1 << bits))),
        ),
        "that zero point is the unsigned grid's (levels from 0); AEQ's int grid starts at qmin = "
        "−2**(bits−1).": (
            right,
            round(-lo / right),
        ),
        "that is the symmetric grid (zero point 0), AEQ's rule for weights and 16-bit activations; "
        "8-bit activations are asymmetric.": (max(abs(low), abs(high)) / qmax, 0),
        "8 bits were assumed: use the bits given (qmin = −2**(bits−1)).": (
            (hi - lo) / 255,
            round(-128 - lo / ((hi - lo) / 255)),
        ),
    }


@feedback.checked("12", hint=GRID_HINT)
def check_aeq_grid(aeq_grid, extra_ranges=()):
    """Checks `aeq_grid(low, high, bits) -> (scale, zero_point)` against
    `qlab.analysis.ranges.aeq_grid` (AEQ's asymmetric rule) on `GRID_RANGES` and any (low, high)
    pairs given (8 bits).

    Returns:
        the message for a right answer.

    Raises:
        Wrong: not a pair, or a scale (relative 1e-6) or zero point that differs; the message names
            the range and the slip when it is a known one.
        Unanswered: the function returns a placeholder.
    """
    cases = [*GRID_RANGES, *((float(lo), float(hi), 8) for lo, hi in extra_ranges)]
    for low, high, bits in cases:
        answer = feedback.answered(aeq_grid(low, high, bits))
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Wrong(
                f"for range [{low:g}, {high:g}] your function returned {answer!r}; return a pair "
                "(scale, zero_point)."
            )
        scale, zero_point = (float(np.asarray(v)) for v in answer)
        want_scale, want_zp = ranges.aeq_grid(low, high, bits)
        if np.isclose(scale, want_scale, rtol=1e-6, atol=0) and zero_point == want_zp:
            continue
        where = f"range [{low:g}, {high:g}] at {bits} bits"
        for message, (s, z) in _grid_slips(low, high, bits).items():
            if (
                (s, z) != (want_scale, want_zp)
                and np.isclose(scale, s, rtol=1e-6)
                and np.isclose(zero_point, z)
            ):
                raise Wrong(f"{where}: {message}")
        if np.isclose(scale, want_scale, rtol=1e-6) and zero_point != round(zero_point):
            raise Wrong(
                f"{where}: zero point {zero_point:g} is not an integer; round it (np.rint)."
            )
        raise Wrong(
            f"{where}: expected scale {want_scale:.6g} and zero point {want_zp} "
            f"(qlab.analysis.ranges.aeq_grid), got scale {scale:.6g} and zero point {zero_point:g}."
        )
    return (
        f"all {len(cases)} ranges give qlab.analysis.ranges.aeq_grid's scale and zero point: 4, 8 "
        "and 16 bits, ranges that leave 0 out included."
    )
