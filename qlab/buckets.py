"""Where values land on a quantization grid: per-bucket counts and errors, how many levels a tensor
uses, and its error split into rounding and clipping, for one tensor or every layer of a model.

The error x − round_trip(x) splits exactly in two: *clipping*, x − clip(x), for values beyond the
grid's range [low, high], and *rounding*, the rest, at most scale/2 for values inside the range.
A grid's *buckets* are its levels: level q collects the values that round to it. For a ReLU layer,
`before_after` compares a grid fitted before the activation with the one fitted after it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab import capture, grid, quiet

SLACK = 1e-3  # in steps: float32 scales leave the extreme weight ~1e-5 step over the range; not clipping
WEIGHTED = ("CONV_2D", "FULLY_CONNECTED")
RELU_LAYERS = ("conv1", "conv2", "conv3", "dense")


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
    """(rounding, clipping) error of every value; they add up to x − round_trip(x)."""
    x = _check(x, g)
    overhang = x - g.clip(x)
    clipping = np.where(np.abs(overhang) > SLACK * _steps(x, g), overhang, 0.0)
    return (x - g.round_trip(x)) - clipping, clipping


def split(x, g: grid.Grid) -> dict[str, float]:
    """Mean squared rounding and clipping error (they sum to the total), the share of values
    clipped, and the total rmse in steps (1/√12 ≈ 0.289 when rounding is uniform and alone)."""
    x = _check(x, g)
    rounding, clipping = errors(x, g)
    total = rounding + clipping
    return {"rounding_mse": float(np.mean(rounding ** 2)), "clipping_mse": float(np.mean(clipping ** 2)),
            "total_mse": float(np.mean(total ** 2)), "clipped_fraction": float(np.mean(clipping != 0)),
            "rmse/scale": float(np.sqrt(np.mean((total / _steps(x, g)) ** 2)))}


def used_levels(x, g: grid.Grid) -> np.ndarray:
    """How many distinct levels the values use: one count per channel (one in all for per-tensor)."""
    q = g.quantize(_check(x, g))
    rows = np.moveaxis(q, g.axis, 0).reshape(g.scale.size, -1) if g.per_axis else q.reshape(1, -1)
    return np.array([np.unique(r).size for r in rows])


def occupancy(x, g: grid.Grid) -> dict[str, float]:
    """Levels the grid has, levels the whole tensor uses (in level units: q, whatever the channel),
    and for per-axis grids the least and median used by one channel."""
    per_channel = used_levels(x, g)
    return {"levels": g.levels, "used": int(np.unique(g.quantize(_check(x, g))).size),
            "used_min": int(per_channel.min()), "used_median": float(np.median(per_channel))}


def one_channel(x, g: grid.Grid, channel: int | None) -> tuple[np.ndarray, grid.Grid]:
    """The values of one channel of a per-axis grid and that channel's own (per-tensor) grid;
    a per-tensor grid's values and grid come back as they are."""
    x = _check(x, g)
    if not g.per_axis:
        return x, g
    if channel is None or not 0 <= channel < g.scale.size:
        raise ValueError(f"this grid is per-axis ({g.scale.size} channels, each with its own scale): "
                         f"pass channel= from 0 to {g.scale.size - 1}")
    return np.take(x, channel, axis=g.axis), g.channel(channel)


def bucket_table(x, g: grid.Grid, channel: int | None = None) -> pd.DataFrame:
    """One row per level: its value, how many values land there, their mean and max |error|, and
    how many were clipped into it (only the two end levels can collect clipped values)."""
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
def layer_weights(pair: capture.Pair, name: str) -> tuple[np.ndarray, grid.Grid]:
    """A layer's float weights (from the float twin) and the grid its deployed weights sit on."""
    layer = pair.layer(name)
    quantized = [l.name for l in pair.layers
                 if l.op in WEIGHTED and pair.deployed.tensors[l.deployed.inputs[1]].quantized]
    if layer.op not in WEIGHTED:
        raise ValueError(f"{name!r} is a {layer.op} op and has no weights; layers with quantized "
                         f"weights: {', '.join(quantized) or 'none'}")
    tensor = pair.deployed.tensors[layer.deployed.inputs[1]]
    if not tensor.quantized:
        raise ValueError(f"{name!r} keeps its weights in {tensor.type} in this model, so they have no "
                         "grid (dynamic_range leaves tensors under 1,024 elements in float); pick one "
                         f"of: {', '.join(quantized) or 'none'}, or use a full_integer model")
    return pair.twin.tensors[layer.twin.inputs[1]].data.astype(np.float64), grid.of_tensor(tensor)


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
    """A layer's output for inputs `x`: from the float twin, from the deployed model (dequantized),
    and the deployed output grid the converter chose from calibration."""
    return _activation(pair, pair.layer(name), _runs(pair, x))


def _row(name: str, kind: str, x: np.ndarray, g: grid.Grid) -> dict:
    return {"layer": name, "tensor": kind, "grid": "per-axis" if g.per_axis else "per-tensor",
            "values": x.size, "scale": float(np.median(g.scale)), "low": float(np.min(g.low)),
            "high": float(np.max(g.high)), "min": x.min(), "max": x.max(), **occupancy(x, g), **split(x, g)}


def weight_table(pair: capture.Pair) -> pd.DataFrame:
    """One row per layer with quantized weights: occupancy and rounding vs clipping on its grid
    (scale: the median over channels)."""
    names = [l.name for l in pair.layers
             if l.op in WEIGHTED and pair.deployed.tensors[l.deployed.inputs[1]].quantized]
    if not names:
        raise ValueError("no layer of this model has quantized weights (a float32 or float16 model?): "
                         "pass a pair whose deployed model is int8")
    return pd.DataFrame([_row(n, "weights", *layer_weights(pair, n)) for n in names])


def activation_table(pair: capture.Pair, x) -> pd.DataFrame:
    """One row per quantized layer output: the float twin's outputs for `x` on the deployed grid.
    Test data can overshoot the range calibration set (RESHAPE shares its input's grid: left out)."""
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
    rounding error falls with the scale while clipping error grows. One row per fraction."""
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


def before_after(model, x, layers=RELU_LAYERS, bits: int = 8) -> pd.DataFrame:
    """For each ReLU layer, an asymmetric grid fitted to its output before the ReLU against one fitted
    after it (as the converter does, the ReLU fused): levels the ReLU output can use (those at or
    above the zero point), levels it does use, the scales, and its rounding error (rmse) on each."""
    x = np.asarray(x, np.float32)
    if x.size == 0:
        raise ValueError(f"no input samples (shape {x.shape}): pass calibration images")
    rows = []
    for name in layers:
        with quiet.stderr():  # a probe model per layer: TensorFlow warns of retracing; harmless here
            pre = capture.preactivation(model, name, x).astype(np.float64)  # KeyError lists the layers
        activation = model.get_layer(name).activation.__name__
        if activation != "relu":
            raise ValueError(f"{name!r} ends in {activation}, not relu; ReLU layers: {', '.join(RELU_LAYERS)}")
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
