"""Checked exercises of notebook 07 (latency and size): a ratio of two models' latencies from
interleaved rounds, as a median with its min and max; a MAC rate from a count of
multiply-accumulates and a latency; and the bytes one weight scale per tensor saves in a file's
quantization parameters.

`check_median_ratio` runs the learner's function on seeded timings of a noisy machine (slow rounds,
spikes) and, when the notebook passes them, on its own measured rounds; it compares the result with
`qlab.perf.bench.round_ratios`. `check_gmac_per_s` compares the learner's rate with
`qlab.perf.work.gmacs` on the digits CNN's and the probes' MAC counts, and on a measured probe.
`check_per_tensor_saving` compares the learner's prediction from the Keras model with
`qlab.perf.sizes.breakdown` of the baseline's int8 file converted both ways.
"""

from __future__ import annotations

import numpy as np

from qlab import artifacts
from qlab.analysis import weights as weight_analysis
from qlab.perf import bench, sizes, work
from qlab.tflite import flatbuffer
from qlab.training import fit, models
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

RATIO_HINT = (
    "for each round r, divide the median of times[r] by the median of base_times[r]; then return "
    "the median of those per-round ratios, their min and their max; compare with "
    "qlab.perf.bench.round_ratios"
)


def noisy_rounds(rounds: int = 9, seed: int = 7) -> tuple[list, list]:
    """Seeded invoke times of a model and of its baseline, as `bench.time_rounds` returns them, on a
    machine that slows down in some rounds (both sides of a round alike) and spikes now and then.

    Returns:
        (times, base_times): two lists of `rounds` float arrays (µs), the model's blocks holding
        about 2.4 times as many invokes as the baseline's.
    """
    rng = np.random.default_rng(seed)
    drift = rng.choice([1.0, 1.0, 1.0, 1.6, 3.0], size=rounds)
    times, base_times = [], []
    for r in range(rounds):
        for out, mean, count in ((times, 4.2, 480), (base_times, 10.0, 200)):
            t = mean * drift[r] * rng.lognormal(0.0, 0.05, count)
            spikes = rng.random(count) < 0.03
            t[spikes] *= rng.uniform(5, 60, spikes.sum())  # another process took the core
            out.append(t)
    return times, base_times


def _ratio_slips(times, base_times) -> dict:
    """{message: the (median, min, max) that slip gives}."""
    r = bench.round_ratios(times, base_times)
    means = np.array([np.mean(t) / np.mean(b) for t, b in zip(times, base_times)])
    pooled = np.median(np.concatenate(times)) / np.median(np.concatenate(base_times))
    inverse = 1 / r
    return {
        "you pooled every round's invokes before taking the medians; take one ratio per round, "
        "so that a slow round slows both sides of its ratio.": (pooled,),
        "you used means within each round: a few spikes (another process took the core) pull a "
        "mean far more than a median.": (np.median(means), means.min(), means.max()),
        "that is the baseline's time over the model's: the ratio is the model's time over the "
        "baseline's (below 1: faster than the baseline).": (
            np.median(inverse),
            inverse.min(),
            inverse.max(),
        ),
        "your median is the mean of the per-round ratios; a mean follows the slowest rounds.": (
            np.mean(r),
        ),
        "that spread is the 10th to 90th percentile; the exercise asks for the min and max over "
        "rounds.": (
            np.median(r),
            np.percentile(r, 10),
            np.percentile(r, 90),
        ),
    }


def _check_triple(got, times, base_times, what: str) -> None:
    r = bench.round_ratios(times, base_times)
    expected = (float(np.median(r)), float(r.min()), float(r.max()))
    got = feedback.answered(got)
    values = np.atleast_1d(np.asarray(got, dtype=object))
    if values.size != 3:
        raise Wrong(f"{what}: expected three numbers (median, min, max), got {got!r}.", RATIO_HINT)
    try:
        values = values.astype(np.float64)
    except (TypeError, ValueError):
        raise Wrong(
            f"{what}: expected three numbers (median, min, max), got {got!r}.", RATIO_HINT
        ) from None
    if np.allclose(values, expected, rtol=1e-9, atol=0):
        return
    for message, slip in _ratio_slips(times, base_times).items():
        if np.isclose(values[0], slip[0], rtol=1e-9) and (
            len(slip) == 1 or np.allclose(values[1:], slip[1:], rtol=1e-9)
        ):
            raise Wrong(f"{what}: {message}", RATIO_HINT)
    shown = ", ".join(f"{v:.4f}" for v in values)
    raise Wrong(
        f"{what}: expected median {expected[0]:.4f} [min {expected[1]:.4f}, max "
        f"{expected[2]:.4f}], got {shown}.",
        RATIO_HINT,
    )


@feedback.checked("07", hint=RATIO_HINT)
def check_median_ratio(median_ratio, times=None, base_times=None):
    """Check the learner's `median_ratio(times, base_times) -> (median, min, max)` against
    `qlab.perf.bench.round_ratios`, on `noisy_rounds()` and, if given, on measured rounds.

    Args:
        times, base_times: measured rounds (lists of arrays of µs) of a model and its baseline, e.g.
            from `bench.time_rounds`; None checks the synthetic rounds only.
    Returns:
        the message for a right answer, with the measured ratio when given.
    Raises:
        Wrong: a value differs (named slips: pooled medians, means within rounds, the inverse ratio,
            a mean over rounds, p10–p90 instead of min–max) or not three numbers come back.
        Unanswered: the function still returns the placeholder.
    """
    synthetic = noisy_rounds()
    _check_triple(
        median_ratio([t.copy() for t in synthetic[0]], [t.copy() for t in synthetic[1]]),
        *synthetic,
        "on the synthetic rounds of a noisy machine",
    )
    if times is None or base_times is None:
        return (
            "it matches on the synthetic rounds: one ratio per round, then their median, min and "
            "max."
        )
    _check_triple(median_ratio(times, base_times), times, base_times, "on your measured rounds")
    r = bench.round_ratios(times, base_times)
    return (
        f"it matches on the synthetic rounds and on yours: {np.median(r):.2f} "
        f"[{r.min():.2f}–{r.max():.2f}] over {len(r)} rounds."
    )


GMACS_HINT = (
    "a rate is work over time: MACs / seconds, where seconds = latency_us × 1e-6; then divide by "
    "1e9 for GMAC/s (giga, 10^9 MACs per second). Compare with qlab.perf.work.gmacs"
)


@feedback.checked("07", hint=GMACS_HINT)
def check_gmac_per_s(gmac_per_s, macs=None, latency_us=None):
    """Check the learner's `gmac_per_s(macs, latency_us) -> GMAC/s` against `qlab.perf.work.gmacs`,
    on the digits CNN's MAC count and the probes' (`qlab.perf.work.PROBES`) with seeded latencies
    and, if given, on a measured count and latency.

    Args:
        macs, latency_us: a measured invoke (MACs and its median µs), e.g. a probe's from
            `work.peaks`; None checks the seeded cases only.
    Returns:
        the message for a right answer, with the measured rate when given.
    Raises:
        Wrong: a rate differs (named slips: MAC/s instead of GMAC/s, a factor of 1,000 from the
            units, time over work) or is not one number.
        Unanswered: the function still returns the placeholder.
    """
    conv, fc = work.PROBES["conv"], work.PROBES["fc"]
    cases = [
        (356_928, 4.2),
        (conv["size"] ** 2 * conv["channels"] ** 2 * conv["kernel"] ** 2, 156.0),
        (fc["batch"] * fc["depth"] * fc["units"], 1_800.0),
    ]
    if macs is not None and latency_us is not None:
        cases.append((int(macs), float(latency_us)))
    for count, us in cases:
        got = np.asarray(feedback.answered(gmac_per_s(count, us)), dtype=object).reshape(-1)
        if got.size != 1 or isinstance(got[0], (bool, str)) or not np.isfinite(float(got[0])):
            raise Wrong(
                f"for {count:,} MACs in {us:,} µs: expected one number (GMAC/s), got "
                f"{got.tolist()!r}.",
                GMACS_HINT,
            )
        value, expected = float(got[0]), work.gmacs(count, us)
        if np.isclose(value, expected, rtol=1e-9):
            continue
        slips = {
            expected * 1e9: "that is MACs per second; GMAC/s divides it by 1e9.",
            expected * 1e3: (
                "off by a factor of 1,000: MACs per µs are millions of MACs per second "
                "(MMAC/s), and a GMAC is 1,000 of those."
            ),
            expected / 1e3: (
                "1,000 times too small: the latency is in microseconds (1e-6 s, not 1e-3) "
                "and a GMAC is 1e9 MACs."
            ),
            us / count: "that is time per MAC (µs per MAC), the inverse of a rate.",
        }
        said = next((m for v, m in slips.items() if np.isclose(value, v, rtol=1e-9)), "")
        raise Wrong(
            f"for {count:,} MACs in {us:,} µs: expected {expected:.4g} GMAC/s, got {value:.4g}. "
            f"{said}".rstrip(),
            GMACS_HINT,
        )
    if len(cases) == 3:
        return "it matches: MACs / (µs × 1e-6) / 1e9 on every case."
    return (
        f"it matches on every case, and your measured invoke runs at {work.gmacs(*cases[-1]):.1f} "
        f"GMAC/s ({cases[-1][0]:,} MACs in {cases[-1][1]:,.1f} µs)."
    )


SAVING_HINT = (
    "per-channel weights store one scale (float32, 4 bytes) and one zero point (int64, 8 bytes) "
    "per output channel, and so do their biases (scale = input scale × weight scale); per-tensor "
    "weights store one of each. Sum (channels − 1) × 12 bytes over every weight tensor and its "
    "bias; read each layer's channels from its kernel's last axis"
)


def _per_axis_channels(tflite: bytes) -> dict:
    """{"weights": [channels of each per-axis weight tensor], "biases": [same for biases]}."""
    model = flatbuffer.read(tflite)
    weight_ids = {t.index for _, t in weight_analysis.weight_tensors(model)}
    found = {"weights": [], "biases": []}
    for tensor in model.tensors:
        if tensor.quantized and tensor.per_axis and tensor.data is not None:
            found["weights" if tensor.index in weight_ids else "biases"].append(
                int(tensor.scale.size)
            )
    return found


@feedback.checked("07", hint=SAVING_HINT)
def check_per_tensor_saving(per_tensor_saving):
    """Check the learner's `per_tensor_saving(model)`: the bytes the quantization part of the
    integer_only file shrinks by with one weight scale per tensor instead of one per output channel,
    predicted from the Keras model, against `qlab.perf.sizes.breakdown` of the two files.

    Args:
        per_tensor_saving: the learner's function (Keras model -> bytes), run on the baseline digits
            CNN (`qlab.training.fit.TrainConfig()`), whose two files are converted once, cached.
    Returns:
        the message for a right answer, with both files' quantization bytes.
    Raises:
        Wrong: the prediction differs (named slips: biases left out, 4-byte zero points, every
            channel counted instead of all but one).
        Unanswered: the function still returns the placeholder.
    """
    config = fit.TrainConfig()
    got = np.asarray(feedback.answered(per_tensor_saving(models.build(config.model))))
    if got.size != 1 or not float(got.reshape(-1)[0]).is_integer():
        raise Wrong(f"expected one whole number of bytes, got {got!r}.", SAVING_HINT)
    got = int(got.reshape(-1)[0])
    per_channel = artifacts.quantized(config, "integer_only", progress=False)
    per_tensor = artifacts.quantized(config, "integer_only", progress=False, per_channel=False)
    before, after = (
        sizes.breakdown(per_channel)["quantization"],
        sizes.breakdown(per_tensor)["quantization"],
    )
    expected = before - after
    if got == expected:
        return (
            f"the quantization parameters take {before:,} bytes per channel and {after:,} per "
            f"tensor: {expected:,} saved, as you predicted."
        )
    channels = _per_axis_channels(per_channel)
    spare = sum(c - 1 for c in channels["weights"] + channels["biases"])
    slips = {
        12
        * sum(
            c - 1 for c in channels["weights"]
        ): "you left out the biases: a per-channel bias has one scale "
        "(input scale × weight scale) and one zero point per channel too.",
        8 * spare: "zero points are stored as int64, 8 bytes each, not 4.",
        12
        * sum(
            channels["weights"] + channels["biases"]
        ): "per-tensor weights still keep one scale and one "
        "zero point: the saving is channels − 1 per tensor.",
    }
    raise Wrong(
        f"the quantization part shrinks by {expected:,} bytes ({before:,} → {after:,}); you "
        f"predicted {got:,}. {slips.get(got, '')}".rstrip(),
        SAVING_HINT,
    )
