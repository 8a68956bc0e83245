"""Solutions to the checked exercises of notebook 14 (the quantization explorer).

- `best_clip(lab, layer, fractions)`: try every fraction with the explorer's compute function,
  activations only at 4 bits, and keep the one whose total (rounding + clipping) error is least.
- `clipping_share(x, g)`: the error x − round_trip(x) splits into clipping, x − clip(x), and
  rounding, the rest; the share is mean(clipping²) / mean(total²).

`MISTAKES` holds the typical wrong answers: the least rounding error or the least clipping error
alone; the share of values clipped instead of the share of the squared error; clipping over
rounding instead of over the total; a ratio of root mean squares.
"""

import numpy as np

from qlab_workshop import explorer


def best_clip(lab, layer, fractions):
    """The fraction whose 4-bit activation grid gives `layer` the least total error on the test
    split."""
    totals = [
        lab.compute(
            explorer.Settings(layer=layer, bits=4, clip=f, quantize="activations")
        ).activations.split["total_mse"]
        for f in fractions
    ]
    return fractions[int(np.argmin(totals))]


def clipping_share(x, g):
    """The share of the mean squared error of `x` on grid `g` that is clipping error."""
    total = x - g.round_trip(x)
    clipping = x - g.clip(x)
    return float(np.mean(clipping**2) / np.mean(total**2))


def _least(key):
    """A wrong `best_clip` that minimises one part of the error alone."""

    def least(lab, layer, fractions):
        splits = [
            lab.compute(
                explorer.Settings(layer=layer, bits=4, clip=f, quantize="activations")
            ).activations.split
            for f in fractions
        ]
        return fractions[int(np.argmin([s[key] for s in splits]))]

    return least


def _share_of_values(x, g):
    return float(np.mean(x != g.clip(x)))


def _over_rounding(x, g):
    clipping = x - g.clip(x)
    rounding = (x - g.round_trip(x)) - clipping
    return float(np.mean(clipping**2) / np.mean(rounding**2))


def _rms_ratio(x, g):
    return float(
        np.sqrt(np.mean((x - g.clip(x)) ** 2)) / np.sqrt(np.mean((x - g.round_trip(x)) ** 2))
    )


SOLUTIONS = {"check_best_clip": best_clip, "check_clipping_share": clipping_share}
MISTAKES = {
    "check_best_clip": [_least("rounding_mse"), _least("clipping_mse")],
    "check_clipping_share": [_share_of_values, _over_rounding, _rms_ratio],
}
