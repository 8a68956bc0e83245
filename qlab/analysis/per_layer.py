"""Per-layer error of a deployed model, in two views, with the QuantizationDebugger's columns.

- *local*: each op of the deployed model against the same op in float, fed the same (dequantized)
  input: the error that one layer adds. This is what `tf.lite.experimental.QuantizationDebugger`
  reports; like it, the first op's float copy gets the model's float input.
- *accumulated*: the deployed model and its float reference run on the same inputs, every layer
  output compared: how error builds up through the network.

Both work for any deployed model whose ops qlab computes in float (the debugger: full integer
only). Metrics follow the debugger: each computed per sample on diff = deployed − float, then
averaged over samples (`_DEFAULT_LAYER_DEBUG_METRICS` and `_collect_layer_statistics` in
tensorflow/lite/tools/optimize/debugging/python/debugger.py). `rmse/scale` is 1/√12 ≈ 0.289 when
rounding to the output grid is the only error."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.analysis import capture
from qlab.conversion import debugger as tf_debugger
from qlab.conversion import modes
from qlab.intmath import float_ops
from qlab.tflite import flatbuffer, naming

METRICS = ("num_elements", "stddev", "mean_error", "max_abs_error", "mean_squared_error")
COLUMNS = ("view", "layer", "op", "tensor", *METRICS, "scale", "zero_point", "rmse/scale", "note")
"""The tables' columns: view; layer (a unique label from the Keras layer name,
`qlab.tflite.naming.labels`: one row per op); op; tensor (the op's output); num_elements (per
sample); stddev, mean_error, max_abs_error (real units) and mean_squared_error (squared) of diff =
deployed − float; scale and zero_point of the output tensor (NaN if it is float); rmse/scale (in
steps, LSB); note: empty, or why a row's metrics were not computed."""
VIEWS = ("local", "accumulated")
ROUNDING_ONLY = 1 / np.sqrt(12)  # rmse/scale of uniform rounding error


def metrics(diffs: np.ndarray) -> dict[str, float]:
    """Returns the debugger's five `METRICS` of `diffs` (deployed − float, samples on axis 0), each
    per sample then averaged: floats in real units (mean_squared_error squared).

    Source: `_DEFAULT_LAYER_DEBUG_METRICS` and the np.nanmean over samples in
    `_collect_layer_statistics`, tensorflow/lite/tools/optimize/debugging/python/debugger.py.
    Raises ValueError for a tensor with no elements per sample."""
    d = np.asarray(diffs, np.float64).reshape(len(diffs), -1)
    if d.shape[1] == 0:
        raise ValueError("the tensor is empty: there is no error to measure")
    per_sample = {
        "num_elements": np.full(len(d), d.shape[1], np.float64),
        "stddev": d.std(axis=1),
        "mean_error": d.mean(axis=1),
        "max_abs_error": np.abs(d).max(axis=1),
        "mean_squared_error": (d**2).mean(axis=1),
    }
    return {name: float(np.nanmean(v)) for name, v in per_sample.items()}


def _row(view: str, layer: str, op: str, out, diffs: np.ndarray) -> dict:
    """One table row: the metrics of `diffs` and the grid of the output tensor `out`."""
    scale = float(out.scale[0]) if out.quantized else np.nan
    row = {"view": view, "layer": layer, "op": op, "tensor": out.name}
    row.update(metrics(diffs))
    row.update(
        {
            "scale": scale,
            "zero_point": int(out.zero_point[0]) if out.quantized else np.nan,
            "rmse/scale": np.sqrt(row["mean_squared_error"]) / scale,
            "note": "",
        }
    )
    return row


def _not_computed(view: str, layer: str, op: str, out, why: str) -> dict:
    """A row whose metrics are NaN, saying why."""
    row = {
        "view": view,
        "layer": layer,
        "op": op,
        "tensor": out.name,
        **dict.fromkeys(METRICS, np.nan),
    }
    row.update(
        {
            "scale": float(out.scale[0]) if out.quantized else np.nan,
            "zero_point": int(out.zero_point[0]) if out.quantized else np.nan,
            "rmse/scale": np.nan,
            "note": f"not computed, because {why}",
        }
    )
    return row


def op_inputs(pair: capture.Pair, layer: capture.OpPair, captured: dict[int, np.ndarray]) -> list:
    """Returns what the float copy of a deployed op is fed, one entry per input: the float
    reference's constant, the deployed input as a real value (`float_input`), or None (absent, or
    state the file keeps between invokes)."""
    inputs = []
    for deployed, float_tflite in zip(layer.deployed.inputs, layer.reference.inputs):
        tensor = pair.reference.tensors[float_tflite] if float_tflite >= 0 else None
        if tensor is None:
            inputs.append(None)
        elif tensor.data is not None:
            inputs.append(tensor.data)
        elif deployed in captured or _quantized_from_float(pair, deployed) is not None:
            inputs.append(float_input(pair, deployed, captured).astype(np.float32))
        else:
            inputs.append(None)
    return inputs


def _quantized_from_float(pair: capture.Pair, index: int):
    for op in pair.deployed.ops:
        if (
            op.name == "QUANTIZE"
            and op.outputs[0] == index
            and not pair.deployed.tensors[op.inputs[0]].quantized
        ):
            return op
    return None


def float_input(pair: capture.Pair, index: int, captured: dict[int, np.ndarray]) -> np.ndarray:
    """Returns the real value a deployed op's input `index` stands for, float32 (n,) + sample
    shape: dequantized, or the float tensor a QUANTIZE op made it from (the model input)."""
    source = _quantized_from_float(pair, index)
    if source is not None:
        return captured[source.inputs[0]]
    return capture.real(pair.deployed, index, captured[index])


def local(
    pair: capture.Pair,
    x: np.ndarray,
    kernels: str = "xnnpack",
    captured: dict[int, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The local view: each deployed op against its float op (`qlab.intmath.float_ops.compute`) fed
    the same inputs made real, with the float reference's constants and the op's fused activation.
    `captured` is `capture.run(pair.tflite, x, kernels)`, if at hand.

    Returns a DataFrame, one row per op, `COLUMNS`, view "local"; an op qlab has no float version
    of gets NaN metrics and a note."""
    captured = capture.run(pair.tflite, x, kernels) if captured is None else captured
    rows = []
    for layer in pair.layers:
        op, reference_op, out = layer.deployed, layer.reference, layer.output(pair)
        try:
            expected = float_ops.compute(
                reference_op,
                op_inputs(pair, layer, captured),
                pair.reference.tensors[reference_op.outputs[0]].shape,
            )
        except NotImplementedError as exc:
            rows.append(_not_computed("local", layer.name, layer.op, out, str(exc)))
            continue
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
        ) as exc:  # inputs the float copy cannot take
            rows.append(
                _not_computed(
                    "local",
                    layer.name,
                    layer.op,
                    out,
                    f"qlab's float copy of {layer.op} could not run on this op's inputs "
                    f"({type(exc).__name__}: {exc})",
                )
            )
            continue
        got = capture.real(pair.deployed, op.outputs[0], captured[op.outputs[0]])
        rows.append(_row("local", layer.name, layer.op, out, got - expected.reshape(got.shape)))
    return pd.DataFrame(rows, columns=COLUMNS)


def accumulated(
    pair: capture.Pair,
    x: np.ndarray,
    kernels: str = "xnnpack",
    captured: dict[int, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The accumulated view: each layer output of the deployed model against its float reference's,
    both run on `x` with `kernels`.

    Returns a DataFrame, one row per layer, `COLUMNS`, view "accumulated"."""
    captured = capture.run(pair.tflite, x, kernels) if captured is None else captured
    reference = capture.run(pair.float_tflite, x, kernels)
    rows = []
    for layer in pair.layers:
        out, reference_out = layer.deployed.outputs[0], layer.reference.outputs[0]
        if out not in captured or reference_out not in reference:
            rows.append(
                _not_computed(
                    "accumulated",
                    layer.name,
                    layer.op,
                    layer.output(pair),
                    f"the runtime kept no value of this {layer.op} op's output",
                )
            )
            continue
        got = capture.real(pair.deployed, out, captured[out])
        rows.append(
            _row(
                "accumulated",
                layer.name,
                layer.op,
                layer.output(pair),
                got - reference[reference_out],
            )
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def layer_errors(
    tflite: bytes,
    float_tflite: bytes,
    x: np.ndarray,
    kernels: str = "xnnpack",
    views=VIEWS,
    keras_model=None,
) -> pd.DataFrame:
    """Both views (or those in `views`) for a deployed model and its float32 reference.

    Returns a DataFrame, one row per op and view ("local": each op run in float on the deployed
    model's own inputs; "accumulated": each output against the float reference's), with columns
    `COLUMNS`: view, layer, op, tensor, the debugger's metrics (num_elements, stddev,
    mean_error, max_abs_error, mean_squared_error), scale, zero_point, rmse/scale (the error in
    output steps, 0.29 for rounding alone) and note (why a row was not computed).

    Raises ValueError for an unknown view, a model with nothing quantized, files that do not pair
    (`capture.pair`), or inputs of the wrong shape."""
    views = (views,) if isinstance(views, str) else tuple(views)
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        raise ValueError(
            f"unknown view {unknown[0] if unknown else '(none)'}; valid views: {', '.join(VIEWS)}"
        )
    pair = capture.pair(tflite, float_tflite, keras_model)
    if not any(t.quantized for t in pair.deployed.tensors):
        raise ValueError(
            f"nothing quantized: {modes.NOTHING_QUANTIZED}; per-layer error needs a "
            "quantized model beside its float reference"
        )
    x = np.asarray(x, np.float32)
    captured = capture.run(tflite, x, kernels)
    frames = [
        {"local": local, "accumulated": accumulated}[v](pair, x, kernels, captured) for v in views
    ]
    return pd.concat(frames, ignore_index=True)


def qat_vs_deployed(
    qat_model, tflite: bytes, x: np.ndarray, kernels: str = "xnnpack"
) -> pd.DataFrame:
    """The QAT Keras model's fake-quantized layer outputs against the deployed int8 model's, on the
    same inputs (view 'qat'). Each op is compared with the Keras layer whose output it holds
    (`qlab.tflite.naming.output_layers`), the last op where several hold one.

    Returns a DataFrame, one row per Keras layer found in the file: `COLUMNS`, then lsb_off (the
    fraction of values more than half a level apart) and max_lsb (the largest gap in levels; NaN
    for a float output)."""
    file = flatbuffer.read(tflite)
    keras_names = {layer.name.removeprefix("quant_"): layer.name for layer in qat_model.layers}
    last: dict[str, flatbuffer.Op] = {}  # Keras layer -> the last op computing it
    for index, name in naming.output_layers(
        file, qat_model
    ).items():  # the layer whose output the op holds
        if name in keras_names:
            last[name] = file.ops[index]
    x = np.asarray(x, np.float32)
    captured = capture.run(tflite, x, kernels)
    outputs = capture.keras_outputs(qat_model, x, [keras_names[n] for n in last])
    rows = []
    for name, op in last.items():
        out = file.tensors[op.outputs[0]]
        got = capture.real(file, out.index, captured[out.index])
        diffs = got - outputs[keras_names[name]].reshape(got.shape)
        row = _row("qat", name, op.name, out, diffs)
        levels = np.abs(diffs) / row["scale"]
        row.update(lsb_off=float(np.mean(levels > 0.5)), max_lsb=float(levels.max()))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*COLUMNS, "lsb_off", "max_lsb"])


def debugger(
    model, calibration: np.ndarray, x: np.ndarray, keep_float: tuple[str, ...] = ()
) -> pd.DataFrame:
    """TFLite's QuantizationDebugger on the float `model` (full integer, calibrated on
    `calibration`), fed `x` one sample at a time; `keep_float` layers are left in float by its
    denylist.

    Returns a DataFrame in `COLUMNS` (view 'debugger'), one row per quantized op. Raises
    ValueError for bad calibration, or an unknown layer in `keep_float`."""
    table, tflite = tf_debugger.layer_statistics(model, calibration, x, keep_float)
    file = flatbuffer.read(tflite)
    labels = naming.labels(file, model)
    ops = iter([op for op in naming.compute_ops(file) if file.tensors[op.outputs[0]].quantized])
    layers = []  # the debugger lists the quantized ops in file order: match them by op name
    for op_name in table["op_name"]:
        op = next((op for op in ops if op.name == op_name), None)
        layers.append(labels[op.index] if op is not None else op_name.lower())
    table.insert(0, "view", "debugger")
    table = table.rename(columns={"op_name": "op", "tensor_name": "tensor"}).drop(
        columns="tensor_idx"
    )
    table.insert(1, "layer", layers)
    table["rmse/scale"] = np.sqrt(table["mean_squared_error"]) / table["scale"]
    table["note"] = ""
    return table[list(COLUMNS)]
