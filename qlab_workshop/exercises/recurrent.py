"""Checked exercises of notebook 11 (recurrent models): the error of an LSTM's output at each time
step, in output steps, and the power-of-two scale the converter gives an LSTM's int16 cell state.

Each check runs the learner's function on small arrays or numbers chosen to catch the usual slips
and compares it with qlab's own functions (`qlab.analysis.per_layer.metrics`,
`qlab.analysis.converter_grids.cell_state_scale`), computed when the check runs; given the
notebook's files, also with `qlab.analysis.recurrent.error_over_time` and with the cell-state scale
the `.tflite` stores.
"""

from __future__ import annotations

import numpy as np

from qlab.analysis import capture, converter_grids, per_layer
from qlab.analysis import recurrent as lstm
from qlab.intmath import float_ops
from qlab.vocabulary import LSTM_INPUTS
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

RMSE_HINT = (
    "for each time step t: d = deployed[:, t] - reference[:, t]; the mean of d**2 over each "
    "sample's units, then over the samples (the QuantizationDebugger's mean_squared_error), its "
    "square root, divided by the output's scale: np.sqrt((d ** 2).mean(axis=(0, 2))) / scale, "
    "one value per step"
)
SHAPES = ((40, 8, 6), (25, 5, 3))
"""(samples, time steps, units) of the synthetic outputs handed to the learner."""


def _outputs(shape: tuple, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A reference output and a deployed one whose error grows with the step and differs between
    samples (so that the mean of per-sample rms is not the rms), and the output's scale."""
    rng = np.random.default_rng(seed)
    reference = rng.uniform(-1, 1, shape)
    spread = (
        rng.uniform(0.2, 2.0, (shape[0], 1, 1)) * np.linspace(0.5, 2.0, shape[1])[None, :, None]
    )
    scale = 2 / 255
    deployed = reference + rng.normal(0.0, 1.0, shape) * spread * scale
    return deployed, reference, scale


def _rmse_truth(deployed: np.ndarray, reference: np.ndarray, scale: float) -> np.ndarray:

    diffs = deployed - reference
    return np.array(
        [
            np.sqrt(per_layer.metrics(diffs[:, t])["mean_squared_error"]) / scale
            for t in range(diffs.shape[1])
        ]
    )


def _rmse_slips(deployed: np.ndarray, reference: np.ndarray, scale: float, got: np.ndarray) -> None:
    d = deployed - reference
    steps = d.shape[1]
    if got.shape != (steps,):
        raise Wrong(
            f"you returned shape {got.shape}; expected ({steps},), one value per time step: "
            "average over the samples (axis 0) and the units (axis 2), keep the steps (axis 1).",
            RMSE_HINT,
        )
    known = {
        "you did not divide by the output's scale: the error is counted in output steps (rmse / "
        "scale).": np.sqrt((d**2).mean(axis=(0, 2))),
        "you took each sample's rms first and then their mean; the debugger averages the squared "
        "errors over the samples, then takes the square root.": np.sqrt((d**2).mean(axis=2)).mean(
            axis=0
        )
        / scale,
        "you averaged |d| (the mean absolute error); the question asks for the root of the mean "
        "squared error.": np.abs(d).mean(axis=(0, 2)) / scale,
        "you returned the mean squared error; take its square root before dividing by the scale.": (
            d**2
        ).mean(axis=(0, 2))
        / scale,
    }
    for message, candidate in known.items():
        if np.allclose(got, candidate, rtol=1e-6):
            raise Wrong(message, RMSE_HINT)


def _compare_rmse(rmse_per_step, deployed, reference, scale, expected, where: str) -> None:
    got = np.asarray(
        feedback.answered(rmse_per_step(deployed.copy(), reference.copy(), scale)), np.float64
    )
    _rmse_slips(deployed, reference, scale, got)
    feedback.expect_close(got, expected, f"the errors per step {where}", rtol=1e-6, hint=RMSE_HINT)


def _lstm_outputs(
    tflite: bytes, float_tflite: bytes, x: np.ndarray, keras_model=None
) -> list[tuple]:
    """(layer, deployed output, float output, scale) of every fused LSTM, for `error_over_time`."""

    pair = capture.pair(tflite, float_tflite, keras_model)
    ops = {op.index for op in lstm.lstm_ops(pair.deployed)}
    x = np.asarray(x, np.float32)
    deployed, reference = capture.run(tflite, x, "xnnpack"), capture.run(float_tflite, x, "xnnpack")
    found = []
    for layer in pair.layers:
        if layer.deployed.index in ops:
            out = layer.output(pair)
            got = capture.real(pair.deployed, out.index, deployed[out.index])
            found.append(
                (
                    layer.name,
                    got,
                    reference[layer.reference.outputs[0]].reshape(got.shape),
                    float(out.scale[0]),
                )
            )
    return found


@feedback.checked("11", hint=RMSE_HINT)
def check_rmse_per_step(rmse_per_step, tflite=None, float_tflite=None, x=None, keras_model=None):
    """Check the learner's `rmse_per_step(deployed, reference, scale) -> (steps,)` (outputs shaped
    (samples, time steps, units)) against `qlab.analysis.per_layer.metrics` on synthetic outputs,
    and, given an integer LSTM file, its float32 reference and inputs, against
    `qlab.analysis.recurrent.error_over_time` on the LSTM's real outputs.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a value differs (the message names the slip: the wrong axes, no division by the
            scale, the mean of per-sample rms, the mean absolute error, no square root).
        Unanswered: the function returns a placeholder.
    """
    for i, shape in enumerate(SHAPES):
        deployed, reference, scale = _outputs(shape, i)
        _compare_rmse(
            rmse_per_step,
            deployed,
            reference,
            scale,
            _rmse_truth(deployed, reference, scale),
            f"of synthetic outputs of shape {shape}",
        )
    if tflite is None:
        return (
            f"every step's error matches per_layer.metrics on {len(SHAPES)} synthetic sets of "
            "outputs."
        )

    table = lstm.error_over_time(tflite, float_tflite, x, keras_model=keras_model)
    said = []
    for layer, deployed, reference, scale in _lstm_outputs(tflite, float_tflite, x, keras_model):
        expected = table[table.layer == layer]["rmse/scale"].to_numpy()
        _compare_rmse(rmse_per_step, deployed, reference, scale, expected, f"of LSTM {layer!r}")
        said.append(
            f"{layer!r}: {expected[0]:.3f} at step 1, {expected[-1]:.3f} at step {len(expected)}"
        )
    return (
        f"every step's error matches per_layer.metrics, and recurrent.error_over_time on the file "
        f"({'; '.join(said)})."
    )


CELL_HINT = (
    "the converter puts the cell state on an int16 grid whose scale is a power of two, 2**k, "
    "with the largest cell value calibration saw, max|c|, just inside the top level: 2**15 steps "
    "of 2**k cover 2**ceil(log2 max|c|), so k = ceil(log2 max|c|) - 15; return the scale 2.0 ** k"
)
REACHES = (0.3, 0.5, 0.51, 1.0, 1.47, 5.75, 10.0, 100.0)
"""max |c| values handed to the learner: exact powers of two and values between them."""


def _cell_slips(reach: float, got: float) -> None:
    log = np.log2(reach)
    known = {
        "you returned k, the exponent; return the scale, 2.0 ** k.": np.ceil(log) - 15,
        "you rounded log2 max|c| down (floor); the grid must reach max|c|, so round up (ceil).": 2.0
        ** (np.floor(log) - 15),
        "you rounded log2 max|c| to the nearest integer; the grid must reach max|c|, so round up "
        "(ceil).": 2.0 ** (np.round(log) - 15),
        "you spread max|c| over the int16 levels (max|c| / 32767); the kernel needs a power of "
        "two, 2**k.": reach / 32767,
        "you spread max|c| over 32768 steps without rounding the exponent; the kernel needs a "
        "power of two.": reach / 32768,
        "one power of two off: int16 has 15 bits after the sign, so 2**15 steps of 2**k cover "
        "2**(k + 15): k = ceil(log2 max|c|) - 15.": 2.0 ** (np.ceil(log) - 16),
        "one power of two off the other way: k = ceil(log2 max|c|) - 15, not - 14.": 2.0
        ** (np.ceil(log) - 14),
    }

    for message, candidate in known.items():
        if np.isclose(got, candidate, rtol=1e-9) and not np.isclose(
            got, converter_grids.cell_state_scale(reach)
        ):
            raise Wrong(f"for max|c| = {reach:g}: {message}", CELL_HINT)


def _compare_cell(cell_scale, reach: float, expected: float, where: str) -> None:
    got = feedback.answered(cell_scale(reach))
    if np.ndim(got) != 0:
        raise Wrong(f"return one number, the scale; got shape {np.shape(got)}.", CELL_HINT)
    got = float(got)
    _cell_slips(reach, got)
    if not np.isclose(got, expected, rtol=1e-9):
        raise Wrong(
            f"{where}: expected {expected:.6g} (2^{np.log2(expected):g}), got {got:.6g}.", CELL_HINT
        )


def _cell_reaches(
    tflite: bytes, float_tflite: bytes, calibration: np.ndarray, keras_model=None
) -> list[tuple]:
    """(layer, max |c| over the calibration set run as the converter runs it: the samples one after
    another, the state carried; the scale the file stores) for every fused LSTM."""

    pair = capture.pair(tflite, float_tflite, keras_model)
    captured = capture.run(float_tflite, np.asarray(calibration, np.float32), carry_state=True)
    found = []
    for layer in pair.layers:
        if layer.op != "UNIDIRECTIONAL_SEQUENCE_LSTM":
            continue
        op = layer.reference
        inputs = [pair.reference.tensors[i].data if i >= 0 else None for i in op.inputs]
        cells = float_ops.lstm_steps(
            op, captured[op.inputs[0]].astype(np.float32), inputs, carry=True
        )[1]
        stored = pair.deployed.tensors[layer.deployed.inputs[LSTM_INPUTS["states"][1]]]
        found.append((layer.name, float(np.abs(cells).max()), float(stored.scale[0])))
    return found


@feedback.checked("11", hint=CELL_HINT)
def check_cell_scale(
    cell_scale, tflite=None, float_tflite=None, calibration=None, keras_model=None
):
    """Check the learner's `cell_scale(max_abs_c) -> scale` against
    `qlab.analysis.converter_grids.cell_state_scale` on `REACHES`, and, given an integer LSTM file,
    its float32 reference and the calibration set it was converted with (and the Keras model, for
    layer names), against the cell-state scale the file stores for each LSTM (max |c| computed in
    float over the calibration set, the state carried from sample to sample as the converter's
    calibration runs).

    Returns:
        the message for a right answer.
    Raises:
        Wrong: a scale differs (the message names the slip: k instead of 2**k, floor or round
            instead of ceil, a scale that is not a power of two, one power of two off).
        Unanswered: the function returns a placeholder.
    """

    for reach in REACHES:
        _compare_cell(
            cell_scale, reach, converter_grids.cell_state_scale(reach), f"for max|c| = {reach:g}"
        )
    if tflite is None:
        return (
            f"every scale matches converter_grids.cell_state_scale for {len(REACHES)} values of "
            "max|c|."
        )
    said = []
    for layer, reach, stored in _cell_reaches(tflite, float_tflite, calibration, keras_model):
        _compare_cell(
            cell_scale,
            reach,
            stored,
            f"for LSTM {layer!r} (max|c| = {reach:.3g} in calibration), against the file",
        )
        said.append(f"{layer!r}: max|c| {reach:.3g} -> 2^{np.log2(stored):g}")
    return (
        "every scale matches converter_grids.cell_state_scale, and the scale the file stores "
        f"({'; '.join(said)})."
    )
