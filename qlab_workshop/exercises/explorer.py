"""Checked exercises of notebook 14 (the quantization explorer): the clip fraction with the least
total error, and the share of an error that is clipping.

Each check computes the truth when it runs, with qlab's own functions
(`qlab_workshop.explorer.compute.fit`, `qlab.analysis.rounding.split`) on the explorer's digits CNN
from the cache, or on small arrays.
"""

from __future__ import annotations

import functools

import numpy as np

from qlab import artifacts
from qlab.analysis import grid, rounding
from qlab.training import data, fit
from qlab_workshop.exercises import feedback
from qlab_workshop.explorer import compute

FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
"""The clip fractions `check_best_clip` offers the learner's function."""
BITS = 4  # the activation grid of `check_best_clip`: few levels, so that the range matters


@functools.lru_cache(maxsize=1)
def default_explorer() -> compute.Explorer:
    """The explorer of notebook 14: the digits CNN notebook 01 trains (`TrainConfig()`), cached.

    Returns:
        a `qlab_workshop.explorer.Explorer` (built once per process).
    """
    digits = data.load()
    return compute.Explorer(artifacts.trained(fit.TrainConfig(), digits, progress=False), digits)


def activation_errors(
    lab: compute.Explorer, layer: str, fractions=FRACTIONS, bits: int = BITS
) -> list[dict]:
    """`layer`'s activations on the grid each clip fraction gives (100 calibration images), measured
    on the test split: the truth `check_best_clip` compares with.

    Returns:
        one `qlab.analysis.rounding.split` dict per fraction, in the order given.

    Raises:
        ValueError: settings the explorer refuses (unknown layer, bits outside 2..16, fraction
            outside (0, 1]).
    """
    values = lab.test_outputs[lab.check(compute.Settings(layer=layer, bits=bits)).layer].astype(
        np.float64
    )
    observed = lab.calibration_range(layer, 100)
    return [
        rounding.split(
            values,
            compute.fit(
                values,
                compute.Settings(layer=layer, bits=bits, clip=f),
                weights=False,
                observed=observed,
            ),
        )
        for f in fractions
    ]


@feedback.checked(
    "14",
    hint="Loop over the fractions, call lab.compute(explorer.Settings(layer=layer, "
    'bits=4, clip=f, quantize="activations")) for each, and keep the f whose '
    'result.activations.split["total_mse"] is smallest.',
)
def check_best_clip(best_clip, lab: compute.Explorer | None = None, layer: str | None = None):
    """Checks `best_clip(lab, layer, fractions)`: the fraction whose 4-bit activation grid gives the
    smallest total (rounding + clipping) error on the test split.

    Args:
        lab: the explorer to ask (default: `default_explorer()`).
        layer: the layer (default: the explorer's second layer, or its only one).

    Returns:
        a `Feedback` (the decorator's); right: a message naming the fraction and its error.

    Raises:
        nothing: a wrong answer raises `feedback.Wrong`, which the decorator turns into a
            `Feedback`.
    """
    lab = lab or default_explorer()
    layer = layer or lab.layers[min(1, len(lab.layers) - 1)]
    got = feedback.answered(best_clip(lab, layer, FRACTIONS))
    splits = activation_errors(lab, layer)
    by = {
        key: FRACTIONS[int(np.argmin([s[key] for s in splits]))]
        for key in ("total_mse", "rounding_mse", "clipping_mse")
    }
    if not isinstance(got, (int, float, np.number)) or isinstance(got, bool):
        raise feedback.Wrong(f"return one of the fractions {FRACTIONS}, got {got!r}.")
    if np.isclose(got, by["total_mse"]):
        best = splits[FRACTIONS.index(by["total_mse"])]
        return (
            f"clip {by['total_mse']:.2f} gives {layer}'s {BITS}-bit activations the least total "
            f"error, {best['total_mse']:.3g} (rounding {best['rounding_mse']:.3g} + clipping "
            f"{best['clipping_mse']:.3g})."
        )
    if np.isclose(got, by["rounding_mse"]):
        raise feedback.Wrong(
            f"clip {got:.2f} has the least rounding error alone; the total also counts "
            "the clipping error, which grows as the range shrinks.",
            'Compare split["total_mse"], not split["rounding_mse"].',
        )
    if np.isclose(got, by["clipping_mse"]):
        raise feedback.Wrong(
            f"clip {got:.2f} has the least clipping error alone; at {BITS} bits a wide range "
            "pays for it in rounding error.",
            'Compare split["total_mse"], the sum of both.',
        )
    total = splits[FRACTIONS.index(got)]["total_mse"] if got in FRACTIONS else None
    raise feedback.Wrong(
        f"clip {got!r} is not the fraction with the least total error"
        + (f" (its total is {total:.3g})." if total is not None else f"; pick one of {FRACTIONS}.")
    )


@feedback.checked(
    "14",
    hint="Split x − g.round_trip(x) into the part beyond the grid's range, "
    "x − g.clip(x), and the rest; return mean(clipping²) / mean(total²).",
)
def check_clipping_share(clipping_share):
    """Checks `clipping_share(x, g)`: the share of the mean squared error of `x` on grid `g` that is
    clipping, clipping_mse / total_mse as `qlab.analysis.rounding.split` gives them, on a per-tensor
    grid that clips, one that does not, and a per-channel weight grid.

    Returns:
        a `Feedback` (the decorator's); right: a message with the shares found.

    Raises:
        nothing: a wrong answer raises `feedback.Wrong`, which the decorator turns into a
            `Feedback`.
    """
    rng = np.random.default_rng(14)
    x = rng.normal(size=(64, 8))
    low, high = grid.value_range(x)
    cases = [
        (x, grid.fit(range=(0.5 * low, 0.5 * high), bits=4)),  # clips the tails
        (x, grid.fit(x, bits=8)),  # the whole range: (almost) nothing clipped
        (x, grid.fit(range=(0.6 * low, 0.6 * high), bits=3, symmetric=True)),
    ]
    w = rng.normal(scale=np.linspace(0.2, 2.0, 8), size=(64, 8))
    per_channel = grid.fit(w, bits=4, symmetric=True, axis=1)
    cases.append(
        (
            w,
            grid.fit(
                range=(0.7 * per_channel.low, 0.7 * per_channel.high),
                bits=4,
                symmetric=True,
                axis=1,
            ),
        )
    )
    shares = []
    for values, g in cases:
        split = rounding.split(values, g)
        truth = split["clipping_mse"] / split["total_mse"]
        got = feedback.answered(clipping_share(values, g))
        if not np.isscalar(got) and np.ndim(got) != 0:
            raise feedback.Wrong(f"return one number, got an array of shape {np.shape(got)}.")
        got = float(got)
        if np.isclose(got, truth, rtol=1e-3, atol=1e-9):
            shares.append(truth)
            continue
        if np.isclose(got, split["clipped_fraction"], rtol=1e-3, atol=1e-9):
            raise feedback.Wrong(
                f"{got:.3f} is the share of values clipped; the check asks for the share "
                f"of the squared error, {truth:.3f} here.",
                "Square the errors and average them.",
            )
        if np.isclose(got, split["clipping_mse"] / max(split["rounding_mse"], 1e-300), rtol=1e-3):
            raise feedback.Wrong(
                f"{got:.3f} is clipping over rounding; a share divides by the total "
                "(rounding + clipping).",
                "Divide by the mean squared total error.",
            )
        if np.isclose(got, np.sqrt(truth), rtol=1e-3):
            raise feedback.Wrong(
                f"{got:.3f} is a ratio of root mean squares; the split adds mean squared "
                "errors, so the share is a ratio of those.",
                "Drop the square roots.",
            )
        raise feedback.Wrong(
            f"on a {g.describe()} grid you gave {got:.4g}; the clipping share is {truth:.4g}."
        )
    return (
        "shares "
        + ", ".join(f"{s:.3f}" for s in shares)
        + " on four grids, as rounding.split gives them."
    )
