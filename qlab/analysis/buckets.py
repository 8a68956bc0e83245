"""Where values land on a quantization grid: per-bucket counts and errors, how many levels a tensor
uses, and its error split into rounding and clipping, for one tensor or every layer of a model.

The error x − round_trip(x) splits exactly in two: *clipping*, x − clip(x), for values beyond the
grid's range [low, high], and *rounding*, the rest, at most scale/2 for values inside the range.
A grid's *buckets* are its levels: level q collects the values that round to it. For a ReLU layer,
`before_after` compares a grid fitted before the activation with the one fitted after it.
Errors are in real units (mse: squared), in steps where a name says /scale. Given values `x`,
a function raises ValueError if `x` is empty or not finite, or a per-axis grid does not fit it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab import quiet
from qlab.analysis import capture, grid
from qlab.vocabulary import DATA_INPUT_FIRST, WEIGHT_INPUTS

SLACK = 1e-3  # in steps: float32 scales leave the extreme weight ~1e-5 step over the range; not clipping


def _values(x) -> np.ndarray:
    """`x` as float64, refused if empty or not finite."""
    x = np.asarray(x, np.float64)
    if x.size == 0:
        raise ValueError(f"the tensor is empty (shape {x.shape}): pass the values to put on the grid")
    if not np.all(np.isfinite(x)):
        raise ValueError("the tensor contains NaN or infinite values; they have no bucket")
    return x


def _check(x, g: grid.Grid) -> np.ndarray:
    """`x` as float64, also refused if a per-axis grid has no channel for each of its slices."""
    x = _values(x)
    if g.per_axis and (x.ndim <= g.axis or x.shape[g.axis] != g.scale.size):
        raise ValueError(f"this grid has {g.scale.size} channels along axis {g.axis}, the tensor has "
                         f"shape {x.shape}: pass the tensor the grid was fitted to (weights: one scale "
                         "per output channel, on axis 0)")
    return x


def _steps(x: np.ndarray, g: grid.Grid) -> np.ndarray:
    """Each value's scale, broadcast to the shape of `x`."""
    if not g.per_axis:
        return np.full(x.shape, g.scale[0])
    shape = [1] * x.ndim
    shape[g.axis] = g.scale.size
    return np.broadcast_to(g.scale.reshape(shape), x.shape)


def errors(x, g: grid.Grid) -> tuple[np.ndarray, np.ndarray]:
    """Returns (rounding, clipping), the error of every value: two float64 arrays of x's shape, real
    units; they add up to x − round_trip(x); clipping is 0 within SLACK steps of [low, high]."""
    x = _check(x, g)
    overhang = x - g.clip(x)
    clipping = np.where(np.abs(overhang) > SLACK * _steps(x, g), overhang, 0.0)
    return (x - g.round_trip(x)) - clipping, clipping


def split(x, g: grid.Grid) -> dict[str, float]:
    """Mean squared rounding and clipping error (they sum to the total), the share of values
    clipped, and the total rmse in steps (1/√12 ≈ 0.289 when rounding is uniform and alone).

    Returns:
        dict of float: rounding_mse, clipping_mse, total_mse, clipped_fraction (0..1), rmse/scale.
    """
    x = _check(x, g)
    rounding, clipping = errors(x, g)
    total = rounding + clipping
    return {"rounding_mse": float(np.mean(rounding ** 2)), "clipping_mse": float(np.mean(clipping ** 2)),
            "total_mse": float(np.mean(total ** 2)), "clipped_fraction": float(np.mean(clipping != 0)),
            "rmse/scale": float(np.sqrt(np.mean((total / _steps(x, g)) ** 2)))}


def used_levels(x, g: grid.Grid) -> np.ndarray:
    """Returns how many distinct levels the values use: int64 array, one per channel ((1,) per tensor)."""
    q = g.quantize(_check(x, g))
    rows = np.moveaxis(q, g.axis, 0).reshape(g.scale.size, -1) if g.per_axis else q.reshape(1, -1)
    return np.array([np.unique(r).size for r in rows])


def occupancy(x, g: grid.Grid) -> dict[str, float]:
    """Returns a dict: levels the grid has, levels the whole tensor uses (in level units: q, whatever
    the channel), and for per-axis grids the least and median used by one channel: levels, used,
    used_min (int), used_median (float); for a per-tensor grid used_min = used_median = used."""
    per_channel = used_levels(x, g)
    return {"levels": g.levels, "used": int(np.unique(g.quantize(_check(x, g))).size),
            "used_min": int(per_channel.min()), "used_median": float(np.median(per_channel))}


def one_channel(x, g: grid.Grid, channel: int | None) -> tuple[np.ndarray, grid.Grid]:
    """Returns (values, grid): the float64 values of one channel of a per-axis grid (its axis
    removed) and that channel's own per-tensor grid; a per-tensor grid's come back as they are.

    Raises:
        ValueError: a per-axis grid and no `channel`, or one out of range (or `x` refused).
    """
    x = _check(x, g)
    if not g.per_axis:
        return x, g
    if channel is None or not 0 <= channel < g.scale.size:
        raise ValueError(f"this grid is per-axis ({g.scale.size} channels, each with its own scale): "
                         f"pass channel= from 0 to {g.scale.size - 1}")
    return np.take(x, channel, axis=g.axis), g.channel(channel)


def bucket_table(x, g: grid.Grid, channel: int | None = None) -> pd.DataFrame:
    """One row per level: its value, how many values land there, their mean and max |error|, and
    how many were clipped into it (only the two end levels can collect clipped values).

    Returns:
        DataFrame, one row per level qmin..qmax: level, value (real), count, mean_abs_error and
        max_abs_error (real units, NaN for an empty level), clipped (int). ValueError as `one_channel`.
    """
    x, g = one_channel(x, g, channel)
    rounding, clipping = errors(x, g)
    idx = (g.quantize(x) - g.qmin).ravel()
    err = np.abs(rounding + clipping).ravel()
    count = np.bincount(idx, minlength=g.levels)
    worst = np.zeros(g.levels)
    np.maximum.at(worst, idx, err)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(idx, weights=err, minlength=g.levels) / count
    return pd.DataFrame({"level": np.arange(g.qmin, g.qmax + 1), "value": g.centers(), "count": count,
                         "mean_abs_error": mean, "max_abs_error": np.where(count > 0, worst, np.nan),
                         "clipped": np.bincount(idx, weights=(clipping != 0).ravel(), minlength=g.levels)
                         .astype(int)})


# -- the layers of a deployed model ------------------------------------------------------------
def _weights_index(layer: capture.Layer) -> int:
    return layer.deployed.inputs[WEIGHT_INPUTS[layer.op][0]]


def _with_quantized_weights(pair: capture.Pair) -> list[str]:
    return [l.name for l in pair.layers
            if l.op in DATA_INPUT_FIRST and pair.deployed.tensors[_weights_index(l)].quantized]


def layer_weights(pair: capture.Pair, name: str) -> tuple[np.ndarray, grid.Grid]:
    """A layer's float weights (from the float twin) and the grid its deployed weights sit on.

    Returns:
        (float64 weights in the file's layout, e.g. (out, kh, kw, in) for CONV_2D; the `Grid`).

    Raises:
        KeyError: no layer of that name.
        ValueError: a layer without weights, or whose weights the model keeps in float (the
            message lists the layers with quantized weights).
    """
    layer = pair.layer(name)
    quantized = _with_quantized_weights(pair)
    if layer.op not in DATA_INPUT_FIRST:
        raise ValueError(f"{name!r} is a {layer.op} op and has no weights; layers with quantized "
                         f"weights: {', '.join(quantized) or 'none'}")
    tensor = pair.deployed.tensors[_weights_index(layer)]
    if not tensor.quantized:
        raise ValueError(f"{name!r} keeps its weights in {tensor.type} in this model, so they have no "
                         "grid (dynamic_range leaves tensors under 1,024 elements in float); pick one "
                         f"of: {', '.join(quantized) or 'none'}, or use a full_integer model")
    twin_weights = pair.twin.tensors[layer.twin.inputs[WEIGHT_INPUTS[layer.op][0]]]
    return twin_weights.data.astype(np.float64), grid.of_tensor(tensor)


def _runs(pair: capture.Pair, x) -> tuple[dict, dict]:
    x = np.asarray(x, np.float32)
    if x.size == 0:
        raise ValueError(f"no input samples (shape {x.shape}): pass calibration or test images")
    return capture.run(pair.twin_tflite, x), capture.run(pair.tflite, x)


def _activation(pair: capture.Pair, layer: capture.Layer, runs) -> tuple[np.ndarray, np.ndarray, grid.Grid]:
    out = layer.output(pair)
    if not out.quantized:
        with_grid = [l.name for l in pair.layers if l.output(pair).quantized]
        raise ValueError(f"{layer.name!r} outputs {out.type} in this model: its activations are not "
                         f"quantized (a dynamic_range or float16 model?); layers with quantized "
                         f"outputs: {', '.join(with_grid) or 'none'}; use a full_integer model")
    twin, deployed = runs
    real = capture.real(pair.deployed, out.index, deployed[out.index]).astype(np.float64)
    return twin[layer.twin.outputs[0]].astype(np.float64), real, grid.of_tensor(out)


def layer_activations(pair: capture.Pair, name: str, x) -> tuple[np.ndarray, np.ndarray, grid.Grid]:
    """Returns a layer's output for inputs `x` from the float twin and from the deployed model (dequantized),
    float64 (n,) + its sample shape, and the deployed output grid the converter chose from calibration.

    Raises:
        KeyError: no layer of that name. ValueError: no samples, or an output not quantized.
    """
    return _activation(pair, pair.layer(name), _runs(pair, x))


def _row(name: str, kind: str, x: np.ndarray, g: grid.Grid) -> dict:
    return {"layer": name, "tensor": kind, "grid": "per-axis" if g.per_axis else "per-tensor",
            "values": x.size, "scale": float(np.median(g.scale)), "low": float(np.min(g.low)),
            "high": float(np.max(g.high)), "min": x.min(), "max": x.max(), **occupancy(x, g), **split(x, g)}


def weight_table(pair: capture.Pair) -> pd.DataFrame:
    """One row per layer with quantized weights: occupancy and rounding vs clipping on its grid
    (scale: the median over channels).

    Returns:
        DataFrame: layer, tensor ("weights"), grid (per-axis or per-tensor), values (count),
        scale, low, high (the grid's range), min, max (the values'), then `occupancy` and `split`.

    Raises:
        ValueError: no layer with quantized weights (a float32 or float16 model).
    """
    names = _with_quantized_weights(pair)
    if not names:
        raise ValueError("no layer of this model has quantized weights (a float32 or float16 model?): "
                         "pass a pair whose deployed model is int8")
    return pd.DataFrame([_row(n, "weights", *layer_weights(pair, n)) for n in names])


def activation_table(pair: capture.Pair, x) -> pd.DataFrame:
    """Returns a DataFrame in `weight_table`'s columns (tensor "activations"), one row per quantized
    layer output: the float twin's outputs for `x` on the deployed grid. Test data can overshoot
    the range calibration set (RESHAPE shares its input's grid: left out).

    Raises:
        ValueError: no samples, or no quantized layer output (a dynamic_range or float model).
    """
    runs = _runs(pair, x)
    layers = [l for l in pair.layers if l.op != "RESHAPE" and l.output(pair).quantized]
    if not layers:
        _activation(pair, pair.layers[0], runs)  # raises, saying why
    rows = []
    for layer in layers:
        values, _, g = _activation(pair, layer, runs)
        rows.append(_row(layer.name, "activations", values, g))
    return pd.DataFrame(rows)


# -- choosing a range: the sweep, and before vs after the activation ----------------------------
def clip_sweep(x, bits: int = 8, symmetric: bool = False, fractions=None) -> pd.DataFrame:
    """Shrink a per-tensor grid's range from the tensor's full (min, max) to a fraction of it:
    rounding error falls with the scale while clipping error grows. One row per fraction.

    Returns:
        DataFrame: fraction, low, high, scale (real units), then `split`'s columns.

    Raises:
        ValueError: fractions outside (0, 1], or none; bits outside 2..16; `x` refused.
    """
    x = _values(x)
    fractions = np.linspace(0.4, 1.0, 61) if fractions is None else np.asarray(fractions, np.float64)
    if fractions.size == 0 or np.any(fractions <= 0) or np.any(fractions > 1):
        raise ValueError("fractions must be in (0, 1]: the share of the full range to keep")
    lo, hi = grid.value_range(x)
    rows = []
    for f in fractions:
        g = grid.fit(range=(lo * f, hi * f), bits=bits, symmetric=symmetric)
        rows.append({"fraction": f, "low": g.low[0], "high": g.high[0], "scale": g.scale[0], **split(x, g)})
    return pd.DataFrame(rows)


def relu_layers(model) -> list[str]:
    """Returns the names (list of str) of the model's layers whose `activation` is relu."""
    return [l.name for l in model.layers if getattr(getattr(l, "activation", None), "__name__", "") == "relu"]


def before_after(model, x, layers=None, bits: int = 8) -> pd.DataFrame:
    """For each ReLU layer, an asymmetric grid fitted to its output before the ReLU against one fitted
    after it (as the converter does, the ReLU fused): levels the ReLU output can use (those at or
    above the zero point), levels it does use, the scales, and its rounding error (rmse) on each.

    Returns:
        DataFrame, one row per layer: layer, min_before, max, then for each of before and after:
        scale_*, zero_point_*, usable_*, used_*, rmse_* (real units); scale_ratio = before / after.

    Raises:
        KeyError: a layer without an activation. ValueError: no samples, or not a ReLU layer.
    """
    x = np.asarray(x, np.float32)
    if x.size == 0:
        raise ValueError(f"no input samples (shape {x.shape}): pass calibration images")
    layers = relu_layers(model) if layers is None else layers
    rows = []
    for name in layers:
        with quiet.stderr():  # a probe model per layer: TensorFlow warns of retracing; harmless here
            pre = capture.preactivation(model, name, x).astype(np.float64)  # KeyError lists the layers
        activation = model.get_layer(name).activation.__name__
        if activation != "relu":
            raise ValueError(f"{name!r} ends in {activation}, not relu; ReLU layers: {', '.join(relu_layers(model))}")
        post = np.maximum(pre, 0.0)
        row = {"layer": name, "min_before": pre.min(), "max": post.max()}
        for when, values in (("before", pre), ("after", post)):
            g = grid.activations(values, bits)
            row.update({f"scale_{when}": g.scale[0], f"zero_point_{when}": int(g.zero_point[0]),
                        f"usable_{when}": int(g.qmax - np.clip(g.zero_point[0], g.qmin, g.qmax) + 1),
                        f"used_{when}": int(used_levels(post, g)[0]),
                        f"rmse_{when}": float(np.sqrt(np.mean((post - g.round_trip(post)) ** 2)))})
        row["scale_ratio"] = row["scale_before"] / row["scale_after"]
        rows.append(row)
    return pd.DataFrame(rows)
