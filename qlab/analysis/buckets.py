"""Where the values of every layer of a deployed model land on its grids: weights and activations,
their levels, rounding vs clipping; and, for ReLU layers, a grid fitted before the activation
against one fitted after it (`before_after`).

The one-tensor measures (`errors`, `split`, `used_levels`, `occupancy`, `one_channel`,
`bucket_table`, `clip_sweep`) are `qlab.analysis.rounding`'s, importable from here too."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.analysis import capture, grid
from qlab.analysis.rounding import (  # noqa: F401 (the one-tensor measures are this API too)
    bucket_table,
    clip_sweep,
    errors,
    occupancy,
    one_channel,
    split,
    used_levels,
)
from qlab.infra import quiet
from qlab.vocabulary import (
    DATA_INPUT_FIRST,
    LSTM_INPUTS,
    LSTM_WEIGHT_NAMES,
    RECURRENT_OPS,
    WEIGHT_INPUTS,
)


def weight_tensors(pair: capture.Pair, name: str) -> dict[str, tuple[np.ndarray, grid.Grid | None]]:
    """A layer's weight tensors: float values (from the float reference) and the grid each deployed
    copy sits on (None where the model keeps them in float).

    Returns {"weights": (w, grid)} for a conv, depthwise conv or fully connected op (w float64 in
    the file's layout), one entry per gate matrix for an LSTM (`LSTM_WEIGHT_NAMES`), {} for an op
    without weights. Raises KeyError for no layer of that name."""
    layer = pair.layer(name)
    if layer.op in DATA_INPUT_FIRST:
        places = {"weights": WEIGHT_INPUTS[layer.op][0]}
    elif layer.op in RECURRENT_OPS:
        places = dict(zip(LSTM_WEIGHT_NAMES, LSTM_INPUTS["weights"]))
    else:
        return {}
    found = {}
    for label, position in places.items():
        if position < len(layer.deployed.inputs) and layer.deployed.inputs[position] >= 0:
            tensor = pair.deployed.tensors[layer.deployed.inputs[position]]
            values = pair.reference.tensors[layer.reference.inputs[position]].data.astype(
                np.float64
            )
            found[label] = (values, grid.of_tensor(tensor) if tensor.quantized else None)
    return found


def _with_quantized_weights(pair: capture.Pair) -> list[str]:
    return [
        each.name
        for each in pair.layers
        if any(g is not None for _, g in weight_tensors(pair, each.name).values())
    ]


def layer_weights(
    pair: capture.Pair, name: str, tensor: str | None = None
) -> tuple[np.ndarray, grid.Grid]:
    """Returns (float64 weights in the file's layout, the `Grid` the deployed ones sit on) of a
    layer; `tensor` picks an LSTM's gate matrix (`qlab.vocabulary.LSTM_WEIGHT_NAMES`).

    Raises:
        KeyError: no layer of that name.
        ValueError: a layer without weights, weights kept in float, or an unknown or missing
            `tensor` (the message lists the choices)."""
    found = weight_tensors(pair, name)
    quantized = _with_quantized_weights(pair)
    if not found:
        raise ValueError(
            f"{name!r} is a {pair.layer(name).op} op and has no weights; layers with quantized "
            f"weights: {', '.join(quantized) or 'none'}"
        )
    if tensor is None and len(found) > 1 or tensor is not None and tensor not in found:
        raise ValueError(f"{name!r} has weights {', '.join(found)}: pass tensor= one of them")
    values, g = found[tensor or next(iter(found))]
    if g is None:
        kind = pair.deployed.tensors[pair.layer(name).deployed.inputs[1]].type
        raise ValueError(
            f"{name!r} keeps its weights in {kind} in this model, so they have no grid "
            "(dynamic_range leaves tensors under 1,024 elements in float); pick one "
            f"of: {', '.join(quantized) or 'none'}, or use a full_integer model"
        )
    return values, g


def _runs(pair: capture.Pair, x) -> tuple[dict, dict]:
    x = np.asarray(x, np.float32)
    if x.size == 0:
        raise ValueError(f"no input samples (shape {x.shape}): pass calibration or test images")
    return capture.run(pair.float_tflite, x), capture.run(pair.tflite, x)


def _activation(
    pair: capture.Pair, layer: capture.OpPair, runs
) -> tuple[np.ndarray, np.ndarray, grid.Grid]:
    out = layer.output(pair)
    if not out.quantized:
        with_grid = [each.name for each in pair.layers if each.output(pair).quantized]
        raise ValueError(
            f"{layer.name!r} outputs {out.type} in this model: its activations are not "
            f"quantized (a dynamic_range or float16 model?); layers with quantized "
            f"outputs: {', '.join(with_grid) or 'none'}; use a full_integer model"
        )
    float_tflite, deployed = runs
    real = capture.real(pair.deployed, out.index, deployed[out.index]).astype(np.float64)
    return float_tflite[layer.reference.outputs[0]].astype(np.float64), real, grid.of_tensor(out)


def layer_activations(pair: capture.Pair, name: str, x) -> tuple[np.ndarray, np.ndarray, grid.Grid]:
    """Returns a layer's output for inputs `x` from the float reference and from the deployed model
    (dequantized), float64 (n,) + sample shape, and the deployed output grid.

    Raises KeyError for no layer of that name, ValueError for no samples or an output not
    quantized."""
    return _activation(pair, pair.layer(name), _runs(pair, x))


def _row(name: str, kind: str, x: np.ndarray, g: grid.Grid) -> dict:
    return {
        "layer": name,
        "tensor": kind,
        "grid": "per-axis" if g.per_axis else "per-tensor",
        "values": x.size,
        "scale": float(np.median(g.scale)),
        "low": float(np.min(g.low)),
        "high": float(np.max(g.high)),
        "min": x.min(),
        "max": x.max(),
        **occupancy(x, g),
        **split(x, g),
    }


def weight_table(pair: capture.Pair) -> pd.DataFrame:
    """One row per quantized weight tensor: layer, tensor, grid (per-axis or per-tensor), values,
    scale (median over channels), low, high (the grid's), min, max (the values'), then `occupancy`
    and `split`.

    Returns the DataFrame. Raises ValueError if no layer has quantized weights."""
    names = _with_quantized_weights(pair)
    if not names:
        raise ValueError(
            "no layer of this model has quantized weights (a float32 or float16 model?): "
            "pass a pair whose deployed model is int8"
        )
    return pd.DataFrame(
        [
            _row(n, label, values, g)
            for n in names
            for label, (values, g) in weight_tensors(pair, n).items()
            if g is not None
        ]
    )


def activation_table(pair: capture.Pair, x) -> pd.DataFrame:
    """Returns a DataFrame in `weight_table`'s columns (tensor "activations") plus `note`, one row
    per quantized layer output: the float reference's outputs for `x` on the deployed grid (NaN and
    a note where not computed; RESHAPE, sharing its input's grid, left out).

    Raises ValueError for no samples, or no quantized layer output."""
    runs = _runs(pair, x)
    layers = [each for each in pair.layers if each.op != "RESHAPE" and each.output(pair).quantized]
    if not layers:
        _activation(pair, pair.layers[0], runs)  # raises, saying why
    rows = []
    for layer in layers:
        if layer.reference.outputs[0] not in runs[0] or layer.output(pair).index not in runs[1]:
            rows.append(
                {
                    "layer": layer.name,
                    "tensor": "activations",
                    "note": "not computed, because the "
                    f"runtime kept no value of this {layer.op} op's output "
                    "(computed before the run?)",
                }
            )
            continue
        values, _, g = _activation(pair, layer, runs)
        rows.append({**_row(layer.name, "activations", values, g), "note": ""})
    return pd.DataFrame(rows)


# -- choosing a range: the sweep, and before vs after the activation ----------------------------
def relu_cap(layer) -> float | None | bool:
    """What a layer's ReLU caps its output at: activation relu or relu6, a ReLU layer with no slope
    or threshold, or Activation("relu")/("relu6").

    Returns None for a plain ReLU, the cap (6.0 for relu6), or False for a layer that does not
    end in a ReLU."""
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    if type(layer).__name__ == "ReLU":
        plain = not float(layer.negative_slope) and not float(layer.threshold)
        return (None if layer.max_value is None else float(layer.max_value)) if plain else False
    return {"relu": None, "relu6": 6.0}.get(activation, False)


def relu_layers(model) -> list[str]:
    """Returns the names of the model's layers that end in a ReLU (`relu_cap`), in order."""
    return [each.name for each in model.layers if relu_cap(each) is not False]


def before_after(model, x, layers=None, bits: int = 8) -> pd.DataFrame:
    """For each ReLU layer (`relu_layers`), an asymmetric grid fitted to its output before the ReLU
    against one fitted after it (as the converter does, the ReLU fused): levels the ReLU output can
    use (at or above the zero point), levels it uses, the scales, its rmse on each.

    Returns a DataFrame, one row per layer: layer, min_before, max, then scale_*, zero_point_*,
    usable_*, used_*, rmse_* for before and after; scale_ratio = before / after.

    Raises KeyError for a layer without an activation, ValueError for no samples, not a ReLU
    layer, or a model without ReLU layers."""
    x = np.asarray(x, np.float32)
    if x.size == 0:
        raise ValueError(f"no input samples (shape {x.shape}): pass calibration images")
    layers = relu_layers(model) if layers is None else layers
    if not layers:
        raise ValueError(
            f"model {model.name!r} has no layer ending in a ReLU: before_after compares grids "
            "fitted before and after one"
        )
    rows = []
    for name in layers:
        with (
            quiet.stderr()
        ):  # a probe model per layer: TensorFlow warns of retracing; harmless here
            pre = capture.preactivation(model, name, x).astype(
                np.float64
            )  # KeyError lists the layers
        cap = relu_cap(model.get_layer(name))
        if cap is False:
            activation = getattr(
                getattr(model.get_layer(name), "activation", None), "__name__", "no ReLU"
            )
            raise ValueError(
                f"{name!r} ends in {activation}, not relu; "
                f"ReLU layers: {', '.join(relu_layers(model))}"
            )
        post = np.clip(pre, 0.0, cap)
        row = {"layer": name, "min_before": pre.min(), "max": post.max()}
        for when, values in (("before", pre), ("after", post)):
            g = grid.activations(values, bits)
            row.update(
                {
                    f"scale_{when}": g.scale[0],
                    f"zero_point_{when}": int(g.zero_point[0]),
                    f"usable_{when}": int(g.qmax - np.clip(g.zero_point[0], g.qmin, g.qmax) + 1),
                    f"used_{when}": int(used_levels(post, g)[0]),
                    f"rmse_{when}": float(np.sqrt(np.mean((post - g.round_trip(post)) ** 2))),
                }
            )
        row["scale_ratio"] = row["scale_before"] / row["scale_after"]
        rows.append(row)
    return pd.DataFrame(rows)
