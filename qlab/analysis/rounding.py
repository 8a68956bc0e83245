"""Where the values of one tensor land on a quantization grid: per-bucket counts and errors, how
many levels it uses, its error split into rounding and clipping; and the clip-range sweep.

The error x − round_trip(x) splits exactly in two: *clipping*, x − clip(x), for values beyond the
grid's range, and *rounding*, the rest, at most scale/2. A grid's *buckets* are its levels.
Errors are in real units (mse: squared), in steps where a name says /scale. Given values `x`, a
function raises ValueError if `x` is empty or not finite, or a per-axis grid does not fit it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.analysis import grid

# in steps: float32 scales leave the extreme weight ~1e-5 step over the range; not clipping
SLACK = 1e-3


def _values(x) -> np.ndarray:
    """`x` as float64, refused if empty or not finite."""
    x = np.asarray(x, np.float64)
    if x.size == 0:
        raise ValueError(
            f"the tensor is empty (shape {x.shape}): pass the values to put on the grid"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("the tensor contains NaN or infinite values; they have no bucket")
    return x


def _check(x, g: grid.Grid) -> np.ndarray:
    """`x` as float64, also refused if a per-axis grid has no channel for each of its slices."""
    x = _values(x)
    if g.per_axis and (x.ndim <= g.axis or x.shape[g.axis] != g.scale.size):
        raise ValueError(
            f"this grid has {g.scale.size} channels along axis {g.axis}, the tensor has "
            f"shape {x.shape}: pass the tensor the grid was fitted to (weights: one scale "
            "per output channel, on axis 0)"
        )
    return x


def _steps(x: np.ndarray, g: grid.Grid) -> np.ndarray:
    """Each value's scale, broadcast to the shape of `x`."""
    if not g.per_axis:
        return np.full(x.shape, g.scale[0])
    shape = [1] * x.ndim
    shape[g.axis] = g.scale.size
    return np.broadcast_to(g.scale.reshape(shape), x.shape)


def errors(x, g: grid.Grid) -> tuple[np.ndarray, np.ndarray]:
    """Returns (rounding, clipping), the error of every value: float64 arrays of x's shape that
    add up to x − round_trip(x); clipping is 0 within SLACK steps of [low, high]."""
    x = _check(x, g)
    overhang = x - g.clip(x)
    clipping = np.where(np.abs(overhang) > SLACK * _steps(x, g), overhang, 0.0)
    return (x - g.round_trip(x)) - clipping, clipping


def split(x, g: grid.Grid) -> dict[str, float]:
    """Returns a dict of floats: rounding_mse and clipping_mse (they sum to total_mse),
    clipped_fraction, and rmse/scale (1/√12 ≈ 0.289 when rounding is uniform and alone)."""
    x = _check(x, g)
    rounding, clipping = errors(x, g)
    total = rounding + clipping
    return {
        "rounding_mse": float(np.mean(rounding**2)),
        "clipping_mse": float(np.mean(clipping**2)),
        "total_mse": float(np.mean(total**2)),
        "clipped_fraction": float(np.mean(clipping != 0)),
        "rmse/scale": float(np.sqrt(np.mean((total / _steps(x, g)) ** 2))),
    }


def used_levels(x, g: grid.Grid) -> np.ndarray:
    """Returns how many distinct levels the values use: int64, one per channel ((1,) per tensor)."""
    q = g.quantize(_check(x, g))
    rows = np.moveaxis(q, g.axis, 0).reshape(g.scale.size, -1) if g.per_axis else q.reshape(1, -1)
    return np.array([np.unique(r).size for r in rows])


def occupancy(x, g: grid.Grid) -> dict[str, float]:
    """Returns a dict: levels (the grid's), used (by the whole tensor), used_min and used_median
    (by one channel; per-tensor: used)."""
    per_channel = used_levels(x, g)
    return {
        "levels": g.levels,
        "used": int(np.unique(g.quantize(_check(x, g))).size),
        "used_min": int(per_channel.min()),
        "used_median": float(np.median(per_channel)),
    }


def one_channel(x, g: grid.Grid, channel: int | None) -> tuple[np.ndarray, grid.Grid]:
    """Returns (values, grid) of one channel of a per-axis grid (its axis removed) as a
    per-tensor grid; a per-tensor grid's as they are. Raises ValueError for a per-axis grid and
    no `channel`, or one out of range."""
    x = _check(x, g)
    if not g.per_axis:
        return x, g
    if channel is None or not 0 <= channel < g.scale.size:
        raise ValueError(
            f"this grid is per-axis ({g.scale.size} channels, each with its own scale): "
            f"pass channel= from 0 to {g.scale.size - 1}"
        )
    return np.take(x, channel, axis=g.axis), g.channel(channel)


def bucket_table(x, g: grid.Grid, channel: int | None = None) -> pd.DataFrame:
    """Returns a DataFrame, one row per level qmin..qmax: level, value, count, mean_abs_error and
    max_abs_error (NaN for an empty level), clipped (only the two end levels collect clipped
    values). Raises ValueError as `one_channel`."""
    x, g = one_channel(x, g, channel)
    rounding, clipping = errors(x, g)
    idx = (g.quantize(x) - g.qmin).ravel()
    err = np.abs(rounding + clipping).ravel()
    count = np.bincount(idx, minlength=g.levels)
    worst = np.zeros(g.levels)
    np.maximum.at(worst, idx, err)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(idx, weights=err, minlength=g.levels) / count
    return pd.DataFrame(
        {
            "level": np.arange(g.qmin, g.qmax + 1),
            "value": g.centers(),
            "count": count,
            "mean_abs_error": mean,
            "max_abs_error": np.where(count > 0, worst, np.nan),
            "clipped": np.bincount(idx, weights=(clipping != 0).ravel(), minlength=g.levels).astype(
                int
            ),
        }
    )


# -- the layers of a deployed model ------------------------------------------------------------
def clip_sweep(x, bits: int = 8, symmetric: bool = False, fractions=None) -> pd.DataFrame:
    """Shrink a per-tensor grid's range from the tensor's (min, max) to fractions of it: rounding
    error falls with the scale while clipping error grows.

    Returns a DataFrame, one row per fraction: fraction, low, high, scale, then `split`'s
    columns. Raises ValueError for fractions outside (0, 1], or none, or bits outside 2..16."""
    x = _values(x)
    fractions = (
        np.linspace(0.4, 1.0, 61) if fractions is None else np.asarray(fractions, np.float64)
    )
    if fractions.size == 0 or np.any(fractions <= 0) or np.any(fractions > 1):
        raise ValueError("fractions must be in (0, 1]: the share of the full range to keep")
    lo, hi = grid.value_range(x)
    rows = []
    for f in fractions:
        g = grid.fit(range=(lo * f, hi * f), bits=bits, symmetric=symmetric)
        rows.append(
            {"fraction": f, "low": g.low[0], "high": g.high[0], "scale": g.scale[0], **split(x, g)}
        )
    return pd.DataFrame(rows)
