"""Checked exercises of notebook 03 (quantization-aware training): the fake-quant op from a min and
a max, as TensorFlow's FakeQuantWithMinMaxVars computes it (nudged so that 0 is a level), and the
per-channel ranges tfmot's QAT keeps for a convolution's kernel.

Each check runs the learner's function on small arrays chosen to catch the usual slips and compares
it with `qlab.analysis.fake_quant.nudge` and `qlab.analysis.grid`, computed when the check runs.
NumPy only, unless the learner hands in a QAT model, whose variables are then read.
"""

from __future__ import annotations

import numpy as np

from qlab.analysis import fake_quant, grid
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

RANGES = ((-0.9, 2.3, 8), (-6.0, 6.0, 8), (0.1, 1.0, 8), (-1.0, 0.5, 4))
"""(min, max, bits) handed to the learner's fake-quant: a range whose ends are not on the grid,
tfmot's starting activation range, a range that leaves 0 out, and a 4-bit one."""
FAKE_QUANT_HINT = (
    "as TensorFlow's op: scale = (max - min) / (2**bits - 1); nudge the zero point to an "
    "integer, zero_point = round(-min / scale) clipped to 0..2**bits - 1, so that the range "
    "becomes [-zero_point * scale, (2**bits - 1 - zero_point) * scale]; then clip x to that "
    "range, round x / scale to the nearest integer and multiply back. "
    "qlab.analysis.fake_quant.nudge(min, max, bits) gives the grid to compare with"
)


def _values(lo: float, hi: float, bits: int) -> np.ndarray:
    """Test values for one range: one per level, each off its level by less than 0.4 of a step (so
    no rounding rule and no float32 rounding can tip it), 0, and values beyond the range (not the
    given min and max themselves: after nudging they can sit exactly between two levels)."""
    g = fake_quant.nudge(lo, hi, bits)
    offsets = np.random.default_rng(bits).uniform(-0.4, 0.4, g.levels)
    inside = g.centers() + offsets * g.scale[0]
    beyond = [g.low[0] - 3.3 * g.scale[0], g.high[0] + 5.4 * g.scale[0], lo - 1.0, hi + 1.0]
    return np.concatenate([inside, [0.0], beyond]).astype(np.float32)


def _fake_quant_slips(x: np.ndarray, lo: float, hi: float, bits: int) -> dict[str, np.ndarray]:
    """{message: what that slip gives} for one range, to name the learner's mistake."""
    x = x.astype(np.float64)
    top = 2**bits - 1
    g = fake_quant.nudge(lo, hi, bits)
    s, low, high = g.scale[0], g.low[0], g.high[0]
    plain = (hi - lo) / top
    return {
        "you did not nudge the range: TensorFlow first moves min and max so that 0.0 falls "
        "exactly on a level (the zero point must be an integer).": lo
        + np.round((np.clip(x, lo, hi) - lo) / plain) * plain,
        "values beyond the range were not clipped: the op clips to the nudged [min, max] "
        "first.": low + np.round((x - low) / s) * s,
        "you rounded down (np.floor); the op rounds to the nearest level.": low
        + np.floor((np.clip(x, low, high) - low) / s) * s,
        f"{2**bits} levels have {top} steps between them: divide (max - min) by {top}, not "
        f"{2**bits}.": _plain_grid(x, lo, hi, 2**bits),
        "you returned the integer levels; fake-quant returns real values (the levels times the "
        "scale).": np.round((np.clip(x, low, high) - low) / s),
    }


def _plain_grid(x: np.ndarray, lo: float, hi: float, steps: int) -> np.ndarray:
    """Fake-quant on `steps` steps over [lo, hi], nudged as the op does (for the slips)."""
    s = (hi - lo) / steps
    zero = np.clip(np.round(-lo / s), 0, steps)
    low, high = -zero * s, (steps - zero) * s
    return low + np.round((np.clip(x, low, high) - low) / s) * s


@feedback.checked("03", hint=FAKE_QUANT_HINT)
def check_fake_quant_min_max(fake_quant_min_max):
    """Check the learner's `fake_quant_min_max(x, min_value, max_value, bits)` against the grid
    TensorFlow's FakeQuantWithMinMaxVars rounds to (`qlab.analysis.fake_quant.nudge`), on `RANGES`.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a value differs (the message names the range and the slip when it is a known one: no
            nudging, no clipping, floor, 2**bits steps, integer levels returned).
        Unanswered: the function returns a placeholder.
    """
    count = 0
    for lo, hi, bits in RANGES:
        x = _values(lo, hi, bits)
        got = np.asarray(feedback.answered(fake_quant_min_max(x.copy(), lo, hi, bits)))
        g = fake_quant.nudge(lo, hi, bits)
        expected = g.round_trip(x)
        what = f"the fake-quantized values for min {lo}, max {hi}, {bits} bits"
        if got.shape != x.shape:
            raise Wrong(
                f"{what} have shape {got.shape}; expected {x.shape}, one value per input.",
                FAKE_QUANT_HINT,
            )
        if got.dtype.kind not in "fiu":
            raise Wrong(f"{what} are not numbers (dtype {got.dtype}).", FAKE_QUANT_HINT)
        tolerance = 1e-3 * g.scale[0]
        if not np.allclose(got, expected, rtol=1e-5, atol=tolerance):
            for message, slip in _fake_quant_slips(x, lo, hi, bits).items():
                if np.allclose(got, slip, rtol=1e-5, atol=tolerance):
                    raise Wrong(f"{what} differ from TensorFlow's op: {message}", FAKE_QUANT_HINT)
            feedback.expect_close(
                got, expected, what, rtol=1e-5, atol=tolerance, hint=FAKE_QUANT_HINT
            )
        count += x.size
    return (
        f"all {count} values match the nudged grid of TensorFlow's fake-quant op over "
        f"{len(RANGES)} ranges, the one that leaves 0 out (shifted to [0, max - min]) included."
    )


KERNEL_HINT = (
    "a Keras Conv2D kernel has shape (kh, kw, in, out): reduce over every axis but the last, "
    "m = np.abs(kernel).max(axis=(0, 1, 2)), and return (-m, m): tfmot's conv weights are "
    "symmetric, one range per output channel"
)


def _kernel() -> np.ndarray:
    """A small conv kernel (3, 3, 2, 5): channel 1 has a large negative outlier, channel 3 only
    positive weights, so that min/max and ±max|w| differ."""
    w = np.random.default_rng(3).normal(0.0, 0.1, (3, 3, 2, 5))
    w[1, 2, 0, 1] = -0.9
    w[..., 3] = np.abs(w[..., 3]) + 0.01
    return w.astype(np.float32)


def _ranges(answer, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The learner's answer as two float64 arrays (low, high), or Wrong."""
    answer = feedback.answered(answer)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Wrong(
            f"{what}: your function returned {type(answer).__name__}; return a pair (low, high) "
            "of arrays, one value per output channel.",
            KERNEL_HINT,
        )
    low, high = (np.asarray(feedback.answered(v), np.float64) for v in answer)
    return low, high


def _kernel_slips(kernel: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
    """Raise Wrong naming the slip if (low, high) is a known wrong answer for `kernel`."""
    axes = tuple(range(kernel.ndim - 1))
    if low.shape != (kernel.shape[-1],) or high.shape != (kernel.shape[-1],):
        if low.size == 1 and high.size == 1:
            raise Wrong(
                "you returned one range for the whole kernel; tfmot's conv kernels get one per "
                f"output channel ({kernel.shape[-1]} here).",
                KERNEL_HINT,
            )
        raise Wrong(
            f"you returned ranges of shape {low.shape} and {high.shape}; expected "
            f"({kernel.shape[-1]},): the output channels are the last axis of a Keras kernel "
            "(TFLite moves them to the first).",
            KERNEL_HINT,
        )
    if np.allclose(low, kernel.min(axis=axes)) and np.allclose(high, kernel.max(axis=axes)):
        raise Wrong(
            "you returned each channel's own min and max; tfmot's conv weights are symmetric: "
            "(-max|w|, +max|w|), so that 0 sits at level 0.",
            KERNEL_HINT,
        )
    m = np.abs(kernel).max(axis=axes)
    if np.allclose(low, m) and np.allclose(high, -m):
        raise Wrong(
            "low and high are swapped: the range runs from -max|w| up to +max|w|.", KERNEL_HINT
        )
    if np.allclose(low, 0) and np.allclose(high, m):
        raise Wrong(
            "your ranges start at 0; a kernel's weights are negative too: (-max|w|, +max|w|).",
            KERNEL_HINT,
        )


@feedback.checked("03", hint=KERNEL_HINT)
def check_kernel_ranges(kernel_ranges, qat_model=None):
    """Check the learner's `kernel_ranges(kernel) -> (low, high)` for a Keras conv kernel (kh, kw,
    in, out) against `qlab.analysis.grid.weights` (the symmetric per-channel grid TFLite writes and
    tfmot uses), and, given a QAT model, against the kernel_min/kernel_max tfmot keeps per conv.

    Args:
        qat_model: a model wrapped by tfmot and trained (optional).
    Returns:
        the message for a right answer.
    Raises:
        Wrong: the ranges differ (the message names the slip: one range per tensor, the wrong axis,
            asymmetric min and max, or a range far from tfmot's variables).
        Unanswered: the function returns a placeholder.
    """
    kernel = _kernel()
    low, high = _ranges(kernel_ranges(kernel.copy()), "on a (3, 3, 2, 5) kernel")
    _kernel_slips(kernel, low, high)
    g = grid.weights(
        kernel, axis=-1
    )  # the grid's ends are ±127 × the float32 scale: max|w| to 1e-7
    feedback.expect_close(high, g.high, "the high ends", rtol=1e-5, hint=KERNEL_HINT)
    feedback.expect_close(low, g.low, "the low ends", rtol=1e-5, hint=KERNEL_HINT)
    if qat_model is None:
        return (
            "every channel's range matches the symmetric per-channel grid "
            "(qlab.analysis.grid.weights)."
        )
    layers = 0
    for site in fake_quant.sites(qat_model):
        if site.kind != "weight" or np.ndim(site.variables["min_var"].numpy()) != 1:
            continue  # per-tensor (dense) kernels: not the exercise
        low, high = _ranges(kernel_ranges(site.weight.numpy()), f"on {site.layer}'s kernel")
        _kernel_slips(site.weight.numpy(), low, high)
        for end, mine, theirs in (
            ("low", low, site.variables["min_var"].numpy()),
            ("high", high, site.variables["max_var"].numpy()),
        ):
            feedback.expect_close(
                mine,
                theirs,
                f"the {end} ends of {site.layer}'s ranges, against tfmot's variables,",
                rtol=1e-2,
                hint=KERNEL_HINT,
            )
        layers += 1
    return (
        "every channel's range matches the symmetric per-channel grid, and tfmot's kernel ranges "
        f"in {layers} conv layers to 1 % (tfmot stores the range of the last training step, "
        "before that step's weight update)."
    )
