"""Checked exercises of notebook 05 (layer-by-layer debugging): a layer's error in LSB (output
steps) from its float and dequantized outputs, as the QuantizationDebugger averages it, and the
layer that loses most, read from a per-layer error table.

Each check runs the learner's function on small inputs chosen to catch the usual slips and compares
it with `qlab.analysis.per_layer`, computed when the check runs; given a pair of a deployed model
and its float reference, or a real table, it also compares on those.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.analysis import capture, grid, per_layer
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

RMSE_HINT = (
    "diff = deployed - float; the debugger takes the mean of diff**2 over each image's values, "
    "then the mean over images (mean_squared_error); the error in LSB is "
    "sqrt(mean_squared_error) / scale, the scale being the output's step"
)


def _outputs() -> tuple[np.ndarray, np.ndarray, float]:
    """(float outputs, deployed outputs dequantized, scale) of a made-up layer: 12 images of
    4 × 4 × 3 values on an int8 grid fitted to the first 8 images, so that the last 4 are partly
    clipped and the images' errors differ a lot."""
    x = np.random.default_rng(8).gamma(2.0, 0.5, (12, 4, 4, 3))
    x[8:] *= 1.3
    g = grid.activations(x[:8])
    return x, g.round_trip(x), float(g.scale[0])


def _rmse_slips(float_out: np.ndarray, deployed: np.ndarray, scale: float) -> dict[str, float]:
    """{message: what that slip gives}."""
    diff = (deployed - float_out).reshape(len(float_out), -1)
    mse = float(np.mean(np.mean(diff**2, axis=1)))
    return {
        "that is the error in real units; divide by the output's scale to count it in steps "
        "(LSB).": np.sqrt(mse),
        "you multiplied by the scale; an error in steps is the error divided by the step.": np.sqrt(
            mse
        )
        * scale,
        "you averaged each image's rmse; the debugger averages mean squares over images, then "
        "takes the root.": float(np.mean(np.sqrt(np.mean(diff**2, axis=1)))) / scale,
        "that is the mean squared error in steps squared; take the square root.": mse / scale**2,
        "that is the largest |error| (per image, averaged), not the root-mean-square.": float(
            np.mean(np.abs(diff).max(axis=1))
        )
        / scale,
    }


def _rmse(rmse_in_lsb, float_out, deployed, scale, what: str) -> float:
    got = feedback.answered(rmse_in_lsb(float_out.copy(), deployed.copy(), scale))
    if np.ndim(got) != 0:
        raise Wrong(
            f"{what}: your function returned an array of shape {np.shape(got)}; return one number.",
            RMSE_HINT,
        )
    expected = np.sqrt(per_layer.metrics(deployed - float_out)["mean_squared_error"]) / scale
    if np.isclose(float(got), expected, rtol=1e-6):
        return float(got)
    for message, slip in _rmse_slips(float_out, deployed, scale).items():
        if np.isclose(float(got), slip, rtol=1e-6):
            raise Wrong(f"{what}: {message}", RMSE_HINT)
    raise Wrong(
        f"{what}: you got {float(got):.6g} LSB; qlab.analysis.per_layer gives {expected:.6g}.",
        RMSE_HINT,
    )


@feedback.checked("05", hint=RMSE_HINT)
def check_rmse_in_lsb(rmse_in_lsb, pair=None, x=None):
    """Check the learner's `rmse_in_lsb(float_out, deployed_out, scale) -> float` (outputs (images,
    ...), real units) against `qlab.analysis.per_layer.metrics`, and, given a `capture.Pair` and
    inputs, on every quantized layer output of the accumulated view (`per_layer.accumulated`).

    Args:
        pair: `capture.pair(deployed, float reference)` (optional); x: the inputs to run both on.
    Returns:
        the message for a right answer.
    Raises:
        Wrong: the value differs (the message names the slip: real units, times the scale, the mean
            of per-image rmse, no square root, the largest error).
        Unanswered: the function returns a placeholder.
    """
    float_out, deployed, scale = _outputs()
    got = _rmse(rmse_in_lsb, float_out, deployed, scale, "on a made-up layer of 12 images")
    if pair is None:
        return f"{got:.3f} LSB on the made-up layer, as qlab.analysis.per_layer computes it."
    x = np.asarray(x, np.float32)
    float_tflite, captured = capture.run(pair.float_tflite, x), capture.run(pair.tflite, x)
    table = per_layer.accumulated(pair, x, captured=captured).set_index("layer")
    names = []
    for layer in pair.layers:
        out = layer.output(pair)
        if not out.quantized:
            continue
        deployed = capture.real(pair.deployed, out.index, captured[out.index]).astype(np.float64)
        float_out = (
            float_tflite[layer.reference.outputs[0]].astype(np.float64).reshape(deployed.shape)
        )
        mine = _rmse(
            rmse_in_lsb, float_out, deployed, float(out.scale[0]), f"on layer {layer.name}"
        )
        feedback.expect_close(
            mine,
            table.loc[layer.name, "rmse/scale"],
            f"{layer.name}'s rmse/scale",
            rtol=1e-5,
            hint=RMSE_HINT,
        )
        names.append(layer.name)
    return (
        f"{got:.3f} LSB on the made-up layer, and on {len(names)} layers of the deployed model "
        "your numbers equal the accumulated view's rmse/scale column."
    )


WORST_HINT = (
    "compare layers in steps of their own output grid: the column rmse/scale "
    "(sqrt(mean_squared_error) / scale); a mean squared error in real units is large or small "
    "only against its layer's step. Skip rows without a value (NaN) and return the layer's name"
)


def _table() -> pd.DataFrame:
    """A made-up table in the debugger's columns where the largest mean_squared_error, the largest
    max_abs_error and the largest rmse/scale fall on three layers, with a row not computed."""
    rows = [
        ("a", "CONV_2D", 2.0e-4, 0.040, 0.030),
        ("b", "CONV_2D", 9.0e-4, 0.150, 0.100),
        ("c", "RESHAPE", np.nan, np.nan, 0.100),
        ("d", "FULLY_CONNECTED", 4.0e-4, 0.090, 0.020),
        ("e", "FULLY_CONNECTED", 5.0e-4, 0.210, 0.150),
        ("f", "SOFTMAX", 1.0e-6, 0.003, 1 / 256),
    ]
    table = pd.DataFrame(
        rows, columns=["layer", "op", "mean_squared_error", "max_abs_error", "scale"]
    )
    table["rmse/scale"] = np.sqrt(table["mean_squared_error"]) / table["scale"]
    return table


def _worst(worst_layer, table: pd.DataFrame, what: str) -> str:
    got = feedback.answered(worst_layer(table.copy()))
    expected = str(table.loc[table["rmse/scale"].idxmax(), "layer"])
    if isinstance(got, np.generic):
        got = got.item()
    if got == expected:
        return got
    if not isinstance(got, str):
        raise Wrong(
            f"{what}: your function returned {got!r} ({type(got).__name__}); return the layer's "
            f"name, a str such as {table.layer.iloc[0]!r}.",
            WORST_HINT,
        )
    by = {
        column: str(table.loc[table[column].idxmax(), "layer"])
        for column in ("mean_squared_error", "max_abs_error")
    }
    if got == by["mean_squared_error"]:
        raise Wrong(
            f"{what}: {got!r} has the largest mean_squared_error, in real units squared; measured "
            f"in its own steps it is smaller than the error of {expected!r}.",
            WORST_HINT,
        )
    if got == by["max_abs_error"]:
        raise Wrong(
            f"{what}: {got!r} has the largest max_abs_error, one extreme value in real units; "
            "compare root-mean-square errors in steps.",
            WORST_HINT,
        )
    if got == str(table.loc[table["rmse/scale"].idxmin(), "layer"]):
        raise Wrong(
            f"{what}: {got!r} has the smallest error; sort descending or use idxmax.", WORST_HINT
        )
    raise Wrong(f"{what}: expected {expected!r}, got {got!r}.", WORST_HINT)


@feedback.checked("05", hint=WORST_HINT)
def check_worst_layer(worst_layer, table=None):
    """Check the learner's `worst_layer(table) -> str` on a made-up table, and on `table` if given
    (a table from `per_layer.debugger` or `per_layer.layer_errors`, one view): the layer with the
    largest rmse/scale, the error in steps of its own output grid.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: another layer (the message names the slip: the largest mean_squared_error or
            max_abs_error, the smallest error) or not a name.
        Unanswered: the function returns a placeholder.
    """
    _worst(worst_layer, _table(), "on a made-up table")
    if table is None:
        return (
            "the layer with the largest error in steps, on a made-up table where the raw errors "
            "point at other layers."
        )
    name = _worst(worst_layer, table, "on your table")
    row = table.set_index("layer").loc[name]
    return (
        f"{name} ({row['op']}), {row['rmse/scale']:.2f} LSB: the layer with the largest error in "
        "steps, on the made-up table too."
    )
