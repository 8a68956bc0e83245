"""Converter variants that show where accuracy goes: layers kept in float, per-tensor weights.

Each function converts the same float model several ways, runs every result on LiteRT and
returns one row per variant, so that accuracy, output error and size sit side by side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab import capture, layer_errors, quantize, tflite_file
from qlab.runtime import Runtime

QUANTIZABLE = ("CONV_2D", "FULLY_CONNECTED")


def _outcome(tflite: bytes, twin_tflite: bytes, x: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, top-1 agreement with the float twin, output rmse against it, and size."""
    probs, float_probs = Runtime(tflite).predict(x), Runtime(twin_tflite).predict(x)
    return {
        "accuracy": float(np.mean(probs.argmax(1) == y)),
        "agreement": float(np.mean(probs.argmax(1) == float_probs.argmax(1))),
        "output_rmse": float(np.sqrt(np.mean((probs - float_probs) ** 2))),
        "size_bytes": len(tflite),
    }


def keep_float_sweep(model, calibration: np.ndarray, x: np.ndarray, y: np.ndarray,
                     choices: list[tuple[str, ...]] | None = None) -> pd.DataFrame:
    """`full_integer` with each choice of layers kept in float (default: none, then each conv and
    dense layer alone, then the two last ones): what each costs in size and buys in accuracy."""
    twin_tflite = quantize.quantize(model, "float32")
    if choices is None:
        twin = tflite_file.read(twin_tflite)
        layers = [capture.layer_name(twin, op) for op in capture.compute_ops(twin) if op.name in QUANTIZABLE]
        choices = [(), *[(name,) for name in layers], tuple(layers[-2:])]
    rows = []
    for keep in choices:
        tflite = quantize.quantize_keeping_float(model, calibration, tuple(keep), twin=twin_tflite)
        rows.append({"keep_float": "+".join(keep) or "(none)", **_outcome(tflite, twin_tflite, x, y)})
    table = pd.DataFrame(rows)
    table["size_vs_int8"] = table["size_bytes"] / table["size_bytes"].iloc[0]
    table["size_vs_float32"] = table["size_bytes"] / len(twin_tflite)
    return table


def per_channel_vs_per_tensor(model, calibration: np.ndarray, x: np.ndarray, y: np.ndarray,
                              mode: str = "full_integer") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert with weights per output channel (the default) and per tensor (the converter's
    switch). Returns (one row per scheme: accuracy, agreement, output error, size;
    local layer error of both schemes side by side: rmse/scale per layer)."""
    twin_tflite = quantize.quantize(model, "float32")
    rows, errors = [], {}
    for scheme, per_channel in (("per-channel", True), ("per-tensor", False)):
        tflite = quantize.quantize(model, mode, calibration, per_channel=per_channel)
        rows.append({"weights": scheme, **_outcome(tflite, twin_tflite, x, y)})
        local = layer_errors.layer_errors(tflite, twin_tflite, x, views=("local",))
        errors[scheme] = local.set_index("layer")["rmse/scale"]
    return pd.DataFrame(rows), pd.DataFrame(errors)


def channel_ranges(twin_tflite: bytes) -> pd.DataFrame:
    """Per conv/dense layer and output channel: the largest |weight|, and how many of the 255
    int8 levels that channel spans with its own scale (all of them) and with the tensor's one."""
    twin = tflite_file.read(twin_tflite)
    rows = []
    for op in capture.compute_ops(twin):
        if op.name not in QUANTIZABLE:
            continue
        w = twin.tensors[op.inputs[1]].data
        reach = np.abs(w.reshape(len(w), -1)).max(axis=1)
        for channel, m in enumerate(reach):
            rows.append({"layer": capture.layer_name(twin, op), "channel": channel, "max_abs": float(m),
                         "levels_per_channel": 255,
                         "levels_per_tensor": int(2 * np.floor(127 * m / reach.max() + 0.5) + 1)})
    return pd.DataFrame(rows)
