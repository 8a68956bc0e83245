"""Checked exercises of notebook 10 (pruning and clustering): the zeros and the distinct values of
each weight tensor read from a `.tflite`, and the target sparsity of tfmot's `PolynomialDecay`
schedule at a training step.

The first check compares the learner's reading of a file with `qlab.analysis.weights.weight_table`
on a small int8 file built when the check runs (a conv and a dense layer whose kernels hold zeros
and a few shared values) and, given the notebook's files, on those; the second compares with tfmot's
own `PolynomialDecay`, run when the check runs.
"""

from __future__ import annotations

import functools

import numpy as np

from qlab import artifacts
from qlab.analysis import weights
from qlab.training import models
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

WEIGHTS_HINT = (
    "file = flatbuffer.read(tflite); for each op in file.ops named CONV_2D, DEPTHWISE_CONV_2D or "
    "FULLY_CONNECTED, its weights are file.tensors[op.inputs[1]] (input 2 is the bias: leave it "
    "out); their stored integers are t.data and their real values t.dequantize(t.data): the "
    "sparsity is the fraction of real values that are exactly 0, the distinct values "
    "np.unique(t.data).size over the whole tensor"
)


@functools.lru_cache(maxsize=1)
def _probe_file() -> bytes:
    """An int8 (integer_only) file of a small conv + dense model whose kernels hold many zeros and
    three shared values, every other output channel without the largest one, so that its per-channel
    scale differs and one value lands on different integers (cached by architecture and weights)."""
    import tf_keras as keras

    with models.fresh_names():
        inputs = keras.Input((6, 6, 1))
        x = keras.layers.Conv2D(4, 3, activation="relu", name="probe_conv")(inputs)
        outputs = keras.layers.Dense(3, name="probe_dense")(keras.layers.Flatten()(x))
        model = keras.Model(inputs, outputs, name="probe")
    rng = np.random.default_rng(10)
    for layer in (model.get_layer("probe_conv"), model.get_layer("probe_dense")):
        kernel, bias = layer.get_weights()
        values = rng.choice(
            [0.0, 0.0, -0.3, 0.2, 0.5], kernel.shape
        )  # many zeros, three shared values
        values[..., ::2] = np.where(
            values[..., ::2] == 0.5, 0.2, values[..., ::2]
        )  # these channels end at 0.3
        layer.set_weights(
            [values.astype(np.float32), rng.normal(0, 0.1, bias.shape).astype(np.float32)]
        )
    calibration = rng.uniform(0, 1, (20, 6, 6, 1)).astype(np.float32)
    return artifacts.quantized_model(model, "integer_only", calibration)


def _weights_slips(table, got: list) -> None:
    if len(got) == 2 * len(table):
        raise Wrong(
            f"you returned {len(got)} pairs for {len(table)} ops with weights: the bias tensors "
            "(input 2) are not weights here; tfmot neither prunes nor clusters them.",
            WEIGHTS_HINT,
        )
    if len(got) != len(table):
        raise Wrong(
            f"you returned {len(got)} pairs; the file has {len(table)} ops with weights "
            f"({', '.join(table.op)}), one pair each, in op order.",
            WEIGHTS_HINT,
        )
    sparsity = np.array([s for s, _ in got], np.float64)
    unique = np.array([u for _, u in got], np.float64)
    checks = {
        "you returned the fraction of nonzero weights (the density); the sparsity is the "
        "fraction of zeros.": (
            np.allclose(sparsity, 1 - table.sparsity) and not np.allclose(sparsity, table.sparsity)
        ),
        "you returned the sparsity in percent; return a fraction in [0, 1].": (
            np.allclose(sparsity, 100 * table.sparsity)
            and not np.allclose(sparsity, table.sparsity)
        ),
        "you counted the zeros; return their fraction of the tensor's weights.": (
            np.allclose(sparsity, table.sparsity * table.weights)
            and not np.allclose(sparsity, table.sparsity)
        ),
        "you counted the distinct values of the fullest output channel; count them over the "
        "whole tensor.": (
            np.array_equal(unique, table.unique_per_channel)
            and not np.array_equal(unique, table.unique)
        ),
        "you counted distinct real values (dequantized); count the integers the file stores: one "
        "real value lands on different integers in channels with different scales, and the other "
        "way round.": (
            np.array_equal(unique, table.unique_real) and not np.array_equal(unique, table.unique)
        ),
    }
    for message, found in checks.items():
        if found:
            raise Wrong(message, WEIGHTS_HINT)


def _compare_weights(zeros_and_values, tflite: bytes, where: str) -> str:
    table = weights.weight_table(tflite)
    got = feedback.answered(zeros_and_values(tflite))
    try:
        got = [
            (float(s), feedback.whole(u, f"the distinct values {where}", WEIGHTS_HINT))
            for s, u in got
        ]
    except (TypeError, ValueError):
        raise Wrong(
            "return a list with one (sparsity, distinct values) pair per op with weights.",
            WEIGHTS_HINT,
        ) from None
    _weights_slips(table, got)
    feedback.expect_close(
        [s for s, _ in got],
        table.sparsity.to_numpy(),
        f"the sparsities {where}",
        rtol=1e-9,
        hint=WEIGHTS_HINT,
    )
    feedback.expect_equal(
        [u for _, u in got],
        [int(u) for u in table.unique],
        f"the distinct values {where}",
        hint=WEIGHTS_HINT,
    )
    return ", ".join(
        f"{op} {100 * s:.1f} % zeros, {u} values"
        for op, s, u in zip(table.op, table.sparsity, table.unique)
    )


@feedback.checked("10", hint=WEIGHTS_HINT)
def check_zeros_and_values(zeros_and_values, tflite=None):
    """Check the learner's `zeros_and_values(tflite) -> [(sparsity, distinct values), ...]` (one
    pair per op with weights, in op order) against `qlab.analysis.weights.weight_table` on a small
    int8 file, and on `tflite` (bytes, or a list of them) if given.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a pair differs (the message names the slip: biases counted, density, percent, a count
            instead of a fraction, the fullest channel's values, distinct real values).
        Unanswered: the function returns a placeholder.
    """
    probe = _compare_weights(zeros_and_values, _probe_file(), "of the small test file")
    if tflite is None:
        return f"every pair matches weights.weight_table on a small int8 file ({probe})."
    files = [tflite] if isinstance(tflite, (bytes, bytearray)) else list(tflite)
    said = [
        _compare_weights(zeros_and_values, bytes(t), f"of your file {i + 1}")
        for i, t in enumerate(files)
    ]
    return (
        "every pair matches weights.weight_table on a small int8 file and on yours: "
        f"{'; '.join(said)}."
    )


SCHEDULE_HINT = (
    "tfmot's PolynomialDecay: p = (step - begin) / (end - begin), clipped to [0, 1]; sparsity = "
    "final + (initial - final) * (1 - p) ** power: it rises fast at first and levels off at final"
)
SCHEDULES = (
    ((0.0, 0.75, 0, 160, 3), (0, 10, 40, 80, 120, 159, 160, 300)),
    ((0.2, 0.9, 50, 250, 2), (0, 50, 60, 150, 249, 250, 400)),
)
"""((initial, final, begin, end, power), steps) handed to the learner."""


def _schedule_truth(initial, final, begin, end, power, step) -> float:
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial, final, begin, end, power=power, frequency=1
    )
    return float(schedule(tf.constant(step, tf.int64))[1].numpy())


def _schedule_slips(initial, final, begin, end, power, step, got: float) -> None:
    raw = (step - begin) / (end - begin)
    p = min(max(raw, 0.0), 1.0)
    known = {
        "a straight line from initial to final; tfmot's schedule is a polynomial of degree "
        "`power`.": initial + (final - initial) * p,
        "p ** power rises slowly at first; tfmot's schedule is final + (initial - final) * (1 - "
        "p) ** power, fast at first.": initial + (final - initial) * p**power,
        "p is not clipped to [0, 1]: before begin the sparsity stays at initial, after end at "
        "final.": final + (initial - final) * (1 - raw) ** power,
        "you returned percent; return a fraction in [0, 1].": 100
        * (final + (initial - final) * (1 - p) ** power),
    }
    truth = _schedule_truth(initial, final, begin, end, power, step)
    for message, candidate in known.items():
        if np.isclose(got, candidate, rtol=1e-5, atol=1e-7) and not np.isclose(
            got, truth, rtol=1e-5, atol=1e-7
        ):
            raise Wrong(
                f"at step {step} of a schedule from {initial} to {final} over steps "
                f"{begin}..{end}: {message}",
                SCHEDULE_HINT,
            )


@feedback.checked("10", hint=SCHEDULE_HINT)
def check_polynomial_sparsity(sparsity_at):
    """Check the learner's `sparsity_at(step, initial, final, begin, end, power)` against tfmot's
    `PolynomialDecay(initial, final, begin, end, power)` at the steps of `SCHEDULES`, before, during
    and after the ramp.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a value differs (named slips: linear, p ** power, no clipping, percent).
        Unanswered: the function returns a placeholder.
    """
    count = 0
    for (initial, final, begin, end, power), steps in SCHEDULES:
        for step in steps:
            got = feedback.answered(sparsity_at(step, initial, final, begin, end, power))
            if np.ndim(got) != 0:
                raise Wrong(
                    f"return one number per step; got shape {np.shape(got)}.", SCHEDULE_HINT
                )
            _schedule_slips(initial, final, begin, end, power, step, float(got))
            truth = _schedule_truth(initial, final, begin, end, power, step)
            if not np.isclose(float(got), truth, rtol=1e-5, atol=1e-7):
                raise Wrong(
                    f"at step {step} of a schedule from {initial} to {final} over steps "
                    f"{begin}..{end} (power {power}): expected {truth:.6f}, got {float(got):.6f}.",
                    SCHEDULE_HINT,
                )
            count += 1
    return f"all {count} values match tfmot's PolynomialDecay, before, during and after the ramp."
