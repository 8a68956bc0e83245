"""Per-layer error of a deployed model, in two views, with the QuantizationDebugger's columns.

- *local*: each op of the deployed model against the same op in float, fed the same input (the
  deployed op's input, dequantized): the error that one layer adds. This is what
  `tf.lite.experimental.QuantizationDebugger` reports; like it, the first op's float copy gets the
  model's float input, so the input's own rounding counts against the first layer.
- *accumulated*: the deployed model and its float reference run on the same inputs, every layer output
  compared: how error builds up through the network.

Both work for any deployed model whose ops qlab can compute in float (full integer, integer
only, 16x8, dynamic range, and models with some layers kept in float); the debugger covers
full-integer models only. Metrics follow the debugger exactly: each is computed per sample on
diff = deployed − float, then averaged over samples (`_DEFAULT_LAYER_DEBUG_METRICS` and
`_collect_layer_statistics` in tensorflow/lite/tools/optimize/debugging/python/debugger.py).
`rmse/scale` is √mean_squared_error over the output's scale; it is 1/√12 ≈ 0.289 when rounding
to the output grid is the only error.
"""

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
"""The tables' columns: view; layer (a unique label from the Keras layer name, `qlab.tflite.naming.labels`:
one row per op); op (CONV_2D, ...); tensor (the op's output); num_elements (per sample); stddev,
mean_error, max_abs_error (real units) and mean_squared_error (real units squared) of
diff = deployed − float; scale (real units per step) and zero_point of the output tensor (both NaN
if it is float); rmse/scale (in steps, LSB); note: empty, or why a row's metrics were not computed."""
VIEWS = ("local", "accumulated")
ROUNDING_ONLY = 1 / np.sqrt(12)  # rmse/scale of uniform rounding error


def metrics(diffs: np.ndarray) -> dict[str, float]:
    """The debugger's five metrics of `diffs` (samples on axis 0): per sample, then the mean.

    Source: `_DEFAULT_LAYER_DEBUG_METRICS` (np.std, np.average, ...) and the np.nanmean over
    samples in `_collect_layer_statistics`, tensorflow/lite/tools/optimize/debugging/python/debugger.py.

    Args:
        diffs: deployed − float, real units, (n,) + the tensor's sample shape.

    Returns:
        dict {name in `METRICS`: float}, errors in real units (mean_squared_error: squared).

    Raises:
        ValueError: a tensor with no elements per sample.
    """
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
    """What the float copy of a deployed op is fed: for each input, the float reference's constant
    (weights, bias, axes, shapes), or the deployed input as a real value (`float_input`), or None
    (an absent input, or state the file keeps between invokes).

    Returns:
        one entry per input of the float_tflite's op, in order.
    """
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
    """The real value a deployed op's input stands for: dequantized, or, where it was quantized
    from a float tensor by a QUANTIZE op (the model input), that float tensor itself.

    Args:
        index: the input tensor's index in `pair.deployed`.
        captured: what `capture.run` kept of the deployed model, by tensor index.

    Returns:
        float32 array (n,) + the tensor's sample shape, real units.
    """
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
    """The local view: each deployed op against its float op fed the same (dequantized) input.

    The float op runs in NumPy (`qlab.intmath.float_ops.compute`) on the float reference's constants
    (weights, bias, axes, ...) and the deployed op's inputs made real, with the op's fused
    activation. An op qlab has no float version of gets a row of NaN metrics saying so.

    Args:
        x: real-valued inputs, (n,) + the input's sample shape.
        kernels: the `qlab.vocabulary.KERNELS` the deployed model runs on.
        captured: `capture.run(pair.tflite, x, kernels)`, if already at hand.

    Returns:
        DataFrame, one row per op, `COLUMNS`, view "local".
    """
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
    """The accumulated view: each layer output of the deployed model against its float reference's.

    Args:
        x: real-valued inputs, (n,) + the input's sample shape; both models run on them.
        kernels: the `qlab.vocabulary.KERNELS` both models run on.
        captured: `capture.run(pair.tflite, x, kernels)`, if already at hand.

    Returns:
        DataFrame, one row per layer, `COLUMNS`, view "accumulated".
    """
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
    """Both views (or those named in `views`) for a deployed model and its float32 reference, one row
    per layer output and view.

    Args:
        tflite: the deployed model's bytes.
        float_tflite: its float32 reference's bytes (mode "float32").
        x: real-valued inputs, (n,) + the input's sample shape (e.g. test images).
        kernels: the `qlab.vocabulary.KERNELS` the models run on.
        views: a view name from `VIEWS`, or a tuple of them.
        keras_model: the Keras model, if at hand, for its layer names (see `capture.pair`).

    Returns:
        DataFrame, `COLUMNS`: the rows of each view in turn (see `local`, `accumulated`).

    Raises:
        ValueError: an unknown view; a model with nothing quantized; float_tflite and model that do not
            pair (see `capture.pair`); inputs of the wrong shape.
    """
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
    """The QAT Keras model's fake-quantized layer outputs against the deployed int8 model's, layer
    by layer on the same inputs (view 'qat'). `lsb_off` is the fraction of values more than half
    a level apart, `max_lsb` the largest gap in levels: where training and deployment disagree.

    Each op is compared with the Keras layer whose output it holds (`qlab.tflite.naming.output_layers`: a
    conv fused with BatchNorm and ReLU, with the ReLU layer; the final SOFTMAX, with the output
    layer), the last op where several hold one; diff = deployed (dequantized) − Keras output.

    Args:
        qat_model: the tfmot quantization-aware tf_keras model `tflite` was converted from.

    Returns:
        DataFrame, one row per Keras layer found in the file: `COLUMNS`, then lsb_off (0..1)
        and max_lsb (steps); for a float output, max_lsb is NaN and lsb_off 0.
    """
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
    """TFLite's QuantizationDebugger on `model` (full integer, calibrated on `calibration`),
    fed `x` one sample at a time, as a table in the same columns (view 'debugger').

    Args:
        model: the float tf_keras model.
        keep_float: layers (named as in these tables) the debugger's denylist leaves in float.

    Returns:
        DataFrame, one row per quantized op, `COLUMNS`, errors in real units averaged over
        samples; rmse/scale is computed here from the debugger's mean_squared_error and scale.

    Raises:
        ValueError: bad calibration, or an unknown layer in `keep_float`.
    """
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
