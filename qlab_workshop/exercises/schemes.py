"""Checked exercises of notebook 09 (custom QAT schemes): the n-bit grid of tfmot's weight
fake-quant (symmetric, narrow range, one scale per output channel), and a percentile range as
`qlab.training.schemes.PercentileQuantizer` computes it.

Each check runs the learner's function on small arrays chosen to catch the usual slips and compares
it with `qlab.analysis.fake_quant.nudge` (TensorFlow's fake-quant grid) or
`qlab.training.schemes.PercentileQuantizer.range_of`, computed when the check runs; given a wrapped
model or the notebook's values, also with the grids the model's fake-quant ops use now.
"""

from __future__ import annotations

import numpy as np

from qlab.analysis import fake_quant
from qlab.training import schemes
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

GRID_HINT = (
    "tfmot's weight quantizer is symmetric and narrow: per output channel (the kernel's last axis) "
    "m = max |w|, the range is [-m, m] on the levels -(2**(bits-1) - 1) .. 2**(bits-1) - 1, so "
    "scale = m / (2**(bits-1) - 1) and the zero point is 0 on the signed grid. "
    "qlab.analysis.fake_quant.nudge(-m, m, bits, narrow_range=True, axis=-1) gives the grid"
)
CASES = ((4, (3, 3, 2, 5)), (3, (2, 2, 3, 4)), (2, (3, 3, 1, 6)))
"""(bits, conv kernel shape in Keras' layout, output channels last) handed to the learner."""


def _kernel(shape: tuple, seed: int) -> np.ndarray:
    """A conv kernel whose channels differ in range (one small, one with a negative outlier)."""
    w = np.random.default_rng(seed).normal(0.0, 0.2, shape)
    w[..., 1] *= 0.1
    w.reshape(-1, shape[-1])[0, 0] = -1.3
    return w.astype(np.float32)


def _truth(w: np.ndarray, bits: int):
    """The grid TensorFlow's fake-quant uses for tfmot's symmetric, narrow, per-channel weights."""
    m = np.abs(w.reshape(-1, w.shape[-1])).max(axis=0)
    return fake_quant.nudge(-m, m, bits, narrow_range=True, axis=w.ndim - 1)


def _scale_slips(w: np.ndarray, bits: int, scale: np.ndarray) -> None:
    """Raise Wrong naming the slip if `scale` is a known wrong answer for kernel `w`."""
    flat = w.reshape(-1, w.shape[-1]).astype(np.float64)
    m, half = np.abs(flat).max(axis=0), 2 ** (bits - 1)
    if scale.size == 1 and w.shape[-1] > 1:
        raise Wrong(
            "you returned one scale for the whole kernel; tfmot's conv weights have one per output "
            f"channel ({w.shape[-1]} here, the last axis of a Keras kernel).",
            GRID_HINT,
        )
    if scale.shape != (w.shape[-1],):
        raise Wrong(
            f"you returned scales of shape {scale.shape}; expected ({w.shape[-1]},): one per "
            "output channel, and in Keras' layout the output channel is the last axis.",
            GRID_HINT,
        )
    known = {
        f"you divided by 2**(bits-1) = {half}; the grid is narrow (the lowest level is left out "
        f"so that it is symmetric): levels -{half - 1}..{half - 1}, so divide max|w| by "
        f"{half - 1}.": m / half,
        f"you spread [-max|w|, max|w|] over 2**bits - 1 = {2**bits - 1} steps; a narrow grid has "
        f"{2**bits - 1} levels, so {2**bits - 2} steps: scale = max|w| / {half - 1}.": 2
        * m
        / (2**bits - 1),
        "you fitted each channel's min..max (an asymmetric grid); tfmot's weight grid is "
        "symmetric about 0.": (flat.max(axis=0) - flat.min(axis=0)) / (2**bits - 2),
        "you used each channel's max, not its largest |w|: a large negative weight must fit "
        "too.": flat.max(axis=0) / (half - 1),
    }
    for message, candidate in known.items():
        if np.allclose(scale, candidate, rtol=1e-5):
            raise Wrong(message, GRID_HINT)


def _compare(weight_grid, w: np.ndarray, bits: int, expected, where: str) -> None:
    answer = feedback.answered(weight_grid(w.copy(), bits))
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Wrong(f"return a pair (scale, zero_point); got {type(answer).__name__}.", GRID_HINT)
    scale = np.asarray(feedback.answered(answer[0]), np.float64)
    zero_point = np.asarray(feedback.answered(answer[1]))
    _scale_slips(w, bits, scale)
    feedback.expect_close(
        scale, expected.scale, f"the {bits}-bit scales {where}", rtol=1e-5, hint=GRID_HINT
    )
    half = 2 ** (bits - 1)
    if np.any(zero_point == half):
        raise Wrong(
            f"a zero point of {half} is the middle level of the unsigned grid 0..{2**bits - 1} "
            "TensorFlow's op counts on; on the signed grid qlab and TFLite write, a symmetric "
            "grid's zero point is 0.",
            GRID_HINT,
        )
    if not np.all(zero_point == expected.zero_point):
        raise Wrong(
            f"the zero point {where}: expected {int(expected.zero_point[0])} for every channel, "
            f"got {zero_point.ravel()[:4].tolist()}.",
            GRID_HINT,
        )


@feedback.checked("09", hint=GRID_HINT)
def check_weight_grid(weight_grid, model=None):
    """Check the learner's `weight_grid(kernel, bits) -> (scale, zero_point)` (a conv kernel in
    Keras' layout; scale one per output channel) against `qlab.analysis.fake_quant.nudge` on
    `CASES`, and, given a model wrapped by `qlab.training.schemes.quantize_bits` whose ranges are
    set, against the grid each of its per-channel weight fake-quant ops uses
    (`qlab.analysis.fake_quant.grids`).

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a scale or zero point differs (the message names the slip: one scale per tensor, the
            wrong axis, 2**(bits-1) or 2**bits - 1 in the denominator, an asymmetric range, max
            instead of max|w|, the unsigned zero point).
        Unanswered: the function returns a placeholder.
    """
    for i, (bits, shape) in enumerate(CASES):
        w = _kernel(shape, i)
        _compare(weight_grid, w, bits, _truth(w, bits), f"of a {bits}-bit kernel of shape {shape}")
    if model is None:
        return (
            "every scale and zero point matches TensorFlow's fake-quant grid (fake_quant.nudge) "
            f"for {len(CASES)} kernels of {', '.join(str(b) for b, _ in CASES)} bits."
        )
    checked = []
    for entry in fake_quant.grids(model):
        if entry.site.kind == "weight" and entry.grid.per_axis:
            w = np.asarray(entry.site.weight.numpy(), np.float32)
            _compare(
                weight_grid,
                w,
                entry.grid.bits,
                entry.grid,
                f"of {entry.site.layer}/{entry.site.tensor}",
            )
            checked.append(f"{entry.site.layer} ({entry.grid.bits} bits)")
    if not checked:
        raise Wrong(
            "the model has no per-channel weight fake-quant op with its range set; pass a model "
            "wrapped with schemes.quantize_bits and calibrated (fake_quant.calibrate).",
            GRID_HINT,
        )
    return (
        "every scale and zero point matches fake_quant.nudge, and the grid the model's "
        f"fake-quant ops use for {', '.join(checked)}."
    )


PERCENTILE_HINT = (
    "take the (100 - p)th and the pth percentiles of all the values by nearest rank "
    "(np.percentile(values, [100 - p, p], method='nearest')), then widen the range to include 0: "
    "low = min(low, 0), high = max(high, 0), as TFLite needs 0 on the grid"
)
PERCENTILE_CASES = (
    (lambda rng: rng.exponential(0.5, 2001), 99.9),  # a ReLU output: all >= 0, a long tail
    (lambda rng: rng.normal(0.3, 1.0, 1500), 99.0),  # signed values
    (lambda rng: rng.exponential(1.0, 600) + 0.2, 95.0),
)  # never 0: the range must reach down to it


def _percentile_slips(values: np.ndarray, p: float, got: tuple) -> None:
    """Raise Wrong naming the slip if `got` is a known wrong range for `values`."""
    lin = np.percentile(values, [100 - p, p])
    raw = np.percentile(values, [100 - p, p], method="nearest")
    known = {
        "you did not widen the range to include 0: TFLite needs real 0 on the grid (low = "
        "min(low, 0), high = max(high, 0)).": raw,
        "you interpolated between values (np.percentile's default); PercentileQuantizer takes "
        "the nearest rank, method='nearest', so the range ends on values that occur.": (
            min(lin[0], 0),
            max(lin[1], 0),
        ),
        "you took the pth percentile of |x| for both ends (a symmetric range); the quantizer is "
        "asymmetric: the (100 - p)th and pth percentiles of x.": (
            -np.percentile(np.abs(values), p, method="nearest"),
            np.percentile(np.abs(values), p, method="nearest"),
        ),
        "you passed p as a fraction (0.999); np.percentile takes percent, 99.9.": (
            min(np.percentile(values, 1 - p / 100, method="nearest"), 0),
            max(np.percentile(values, p / 100, method="nearest"), 0),
        ),
        "that is the min and max of the values, not their percentiles.": (
            min(values.min(), 0),
            max(values.max(), 0),
        ),
    }
    for message, candidate in known.items():
        if np.allclose(got, candidate, rtol=1e-6, atol=1e-9) and not np.allclose(
            got, _percentile_truth(values, p)
        ):
            raise Wrong(message, PERCENTILE_HINT)


def _percentile_truth(values: np.ndarray, p: float) -> tuple[float, float]:
    return schemes.PercentileQuantizer(8, p).range_of(values)


def _compare_range(percentile_range, values: np.ndarray, p: float, where: str) -> None:
    got = feedback.answered(percentile_range(values.copy(), p))
    if np.shape(got) != (2,):
        raise Wrong(f"return a pair (low, high); got shape {np.shape(got)}.", PERCENTILE_HINT)
    got = tuple(float(v) for v in got)
    _percentile_slips(values, p, got)
    feedback.expect_close(
        got, _percentile_truth(values, p), f"(low, high) {where}", rtol=1e-6, hint=PERCENTILE_HINT
    )


@feedback.checked("09", hint=PERCENTILE_HINT)
def check_percentile_quantizer_range(percentile_range, values=None, percentile: float = 99.9):
    """Check the learner's `percentile_range(values, percentile) -> (low, high)` against
    `qlab.training.schemes.PercentileQuantizer(bits, percentile).range_of` on `PERCENTILE_CASES`,
    and on `values` (e.g. a layer's float outputs) at `percentile` if given.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a range differs (the message names the slip: 0 not included, interpolation instead
            of nearest rank, a symmetric range, p as a fraction, min and max).
        Unanswered: the function returns a placeholder.
    """
    rng = np.random.default_rng(9)
    for make, p in PERCENTILE_CASES:
        values_ = make(rng).astype(np.float32)
        _compare_range(
            percentile_range, values_, p, f"at the {p:g}th percentile of {values_.size} values"
        )
    if values is None:
        return (
            f"every range matches PercentileQuantizer.range_of ({len(PERCENTILE_CASES)} sets of "
            "values)."
        )
    values = np.asarray(values, np.float32).ravel()
    _compare_range(percentile_range, values, percentile, f"of your {values.size:,} values")
    low, high = _percentile_truth(values, percentile)
    return (
        f"every range matches PercentileQuantizer.range_of; on your {values.size:,} values the "
        f"{percentile:g}th-percentile range is [{low:.3f}, {high:.3f}] against min-max "
        f"[{min(float(values.min()), 0):.3f}, {max(float(values.max()), 0):.3f}]."
    )
