"""Converter variants that show where accuracy goes: layers kept in float, per-tensor weights.
Each function converts one float model several ways and runs every result on LiteRT, one row per
variant."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.analysis import per_layer
from qlab.conversion import debugger, to_tflite
from qlab.tflite import flatbuffer, naming
from qlab.tflite.runtime import Runtime
from qlab.vocabulary import (
    DATA_INPUT_FIRST,
    LSTM_INPUTS,
    LSTM_WEIGHT_NAMES,
    OUTPUT_CHANNEL_AXIS,
    RECURRENT_OPS,
    WEIGHT_INPUTS,
)


def _outcome(tflite: bytes, float_tflite: bytes, x: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, top-1 agreement with the float reference, output rmse against it, and size."""
    probs, float_probs = Runtime(tflite).predict(x), Runtime(float_tflite).predict(x)
    return {
        "accuracy": float(np.mean(probs.argmax(1) == y)),
        "agreement": float(np.mean(probs.argmax(1) == float_probs.argmax(1))),
        "output_rmse": float(np.sqrt(np.mean((probs - float_probs) ** 2))),
        "size_bytes": len(tflite),
    }


def keep_float_sweep(
    model,
    calibration: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    choices: list[tuple[str, ...]] | None = None,
) -> pd.DataFrame:
    """`full_integer` with each choice of layers kept in float (through the QuantizationDebugger's
    denylist, `qlab.conversion.debugger.quantize_keeping_float`): what each costs in size and buys
    in accuracy. A choice is a tuple of layer names (or one name); () keeps none. Default: none,
    then each layer with weights alone, then the last two if there are more than two.

    Returns a DataFrame, one row per choice: keep_float (names joined by "+", or "(none)"),
    accuracy, agreement (top-1 with the float reference), output_rmse (against its probabilities),
    size_bytes, size_vs_int8 (against the first row), size_vs_float32.

    Raises ValueError for a QAT model, bad calibration, or an unknown layer in a choice."""
    float_tflite = to_tflite.quantize(model, "float32")
    if choices is None:
        reference = flatbuffer.read(float_tflite)
        labels = naming.labels(reference, model)
        layers = [
            labels[op.index]
            for op in naming.compute_ops(reference)
            if op.name in DATA_INPUT_FIRST or op.name in RECURRENT_OPS
        ]
        choices = [(), *[(name,) for name in layers]] + (
            [tuple(layers[-2:])] if len(layers) > 2 else []
        )
    choices = [(keep,) if isinstance(keep, str) else tuple(keep) for keep in choices]
    rows = []
    for keep in choices:
        tflite = debugger.quantize_keeping_float(
            model, calibration, tuple(keep), float_tflite=float_tflite
        )
        rows.append(
            {"keep_float": "+".join(keep) or "(none)", **_outcome(tflite, float_tflite, x, y)}
        )
    table = pd.DataFrame(rows)
    table["size_vs_int8"] = table["size_bytes"] / table["size_bytes"].iloc[0]
    table["size_vs_float32"] = table["size_bytes"] / len(float_tflite)
    return table


def per_channel_vs_per_tensor(
    model, calibration: np.ndarray, x: np.ndarray, y: np.ndarray, mode: str = "full_integer"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert with weights per output channel (the default) and per tensor: the outcome of each,
    and the local layer error of both side by side.

    Returns (schemes, layers): one row per scheme, weights ("per-channel" or "per-tensor") and the
    columns of `keep_float_sweep`; and the local view's rmse/scale, indexed by layer, one column per
    scheme.

    Raises:
        ValueError: an unknown mode, a QAT model, bad calibration, or a mode that quantizes nothing.
        qlab.conversion.to_tflite.ConversionError: the converter failed."""
    float_tflite = to_tflite.quantize(model, "float32")
    rows, errors = [], {}
    for scheme, per_channel in (("per-channel", True), ("per-tensor", False)):
        tflite = to_tflite.quantize(model, mode, calibration, per_channel=per_channel)
        rows.append({"weights": scheme, **_outcome(tflite, float_tflite, x, y)})
        local = per_layer.layer_errors(tflite, float_tflite, x, views=("local",), keras_model=model)
        errors[scheme] = local.set_index("layer")["rmse/scale"]
    return pd.DataFrame(rows), pd.DataFrame(errors)


def channel_ranges(float_tflite: bytes, keras_model=None) -> pd.DataFrame:
    """Per weight tensor and output channel of a float32 .tflite: the largest |weight|, and how many
    of the 255 int8 levels that channel spans with its own scale and with the tensor's one.

    Returns a DataFrame, one row per (layer, tensor, channel): layer, tensor ("weights", or an
    LSTM gate matrix's name), channel, max_abs, levels_per_channel (255; 1 for an all-zero
    channel), levels_per_tensor (2·round(127·max_abs / the tensor's largest) + 1)."""
    reference = flatbuffer.read(float_tflite)
    labels = naming.labels(reference, keras_model)
    rows = []
    for op in naming.compute_ops(reference):
        if op.name in DATA_INPUT_FIRST:
            tensors = {
                "weights": np.moveaxis(
                    reference.tensors[op.inputs[WEIGHT_INPUTS[op.name][0]]].data,
                    OUTPUT_CHANNEL_AXIS[op.name],
                    0,
                )
            }
        elif op.name in RECURRENT_OPS:
            tensors = {
                name: reference.tensors[op.inputs[i]].data
                for name, i in zip(LSTM_WEIGHT_NAMES, LSTM_INPUTS["weights"])
                if op.inputs[i] >= 0
            }
        else:
            continue
        for tensor, w in tensors.items():
            reach = np.abs(w.reshape(len(w), -1)).max(axis=1)
            widest = reach.max() if reach.max() > 0 else 1.0
            for channel, m in enumerate(reach):
                rows.append(
                    {
                        "layer": labels[op.index],
                        "tensor": tensor,
                        "channel": channel,
                        "max_abs": float(m),
                        "levels_per_channel": 255 if m > 0 else 1,
                        "levels_per_tensor": int(2 * np.floor(127 * m / widest + 0.5) + 1),
                    }
                )
    return pd.DataFrame(rows)
