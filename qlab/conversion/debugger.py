"""TFLite's QuantizationDebugger: its denylist keeps chosen layers in float in a `full_integer`
model (`quantize_keeping_float`); its per-layer statistics are the reference qlab's local view of
per-layer error is checked against (`layer_statistics`). TensorFlow is imported lazily.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from qlab.conversion import converter, modes
from qlab.infra import quiet
from qlab.tflite import flatbuffer, naming


def denylisted_nodes(
    model, layers: tuple[str, ...], float_tflite: bytes | None = None
) -> list[str]:
    """Returns the debugger's `denylisted_nodes`: the output tensor names, in the float32 .tflite
    (converted here if not given), of the ops of `layers`, each a Keras layer (all its ops) or an
    op's label in layer-error tables (e.g. 'head/softmax': that op only).

    Raises ValueError for a layer no op comes from, listing those that exist.
    """
    if float_tflite is None:
        float32 = modes.get("float32")
        float_tflite = converter.convert(
            converter.converter_for(model, float32, None), model, float32
        )
    file = flatbuffer.read(float_tflite)
    labels, owners = naming.labels(file, model), naming.layer_names(file, model)
    by_layer: dict[str, list[str]] = {}
    for index, label in labels.items():
        tensor = file.tensors[file.ops[index].outputs[0]].name
        by_layer.setdefault(owners[index], []).append(tensor)
        if label != owners[index]:
            by_layer.setdefault(label, []).append(tensor)
    unknown = [name for name in layers if name not in by_layer]
    if unknown:
        raise ValueError(
            f"no layer {', '.join(map(repr, unknown))} to keep in float; "
            f"the model's layers are: {', '.join(by_layer)}"
        )
    return [tensor for name in layers for tensor in by_layer[name]]


def quantization_debugger(
    model,
    calibration,
    samples,
    keep_float: tuple[str, ...] = (),
    per_channel: bool = True,
    float_tflite: bytes | None = None,
):
    """Returns a `QuantizationDebugger` for `model` in `full_integer`, built but not yet run, fed
    `samples` one at a time, with the ops of `keep_float` denylisted.

    Raises ValueError for bad calibration or an unknown layer in `keep_float`.
    """
    import tensorflow as tf  # lazily: see the module docstring

    mode = modes.get("full_integer")
    calibration = converter.check_calibration(model, calibration, mode)
    nodes = denylisted_nodes(model, keep_float, float_tflite) if keep_float else None
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    samples = np.asarray(samples, np.float32)
    with quiet.stderr():
        return tf.lite.experimental.QuantizationDebugger(
            converter=converter.converter_for(model, mode, calibration, per_channel),
            debug_dataset=lambda: ([s[np.newaxis]] for s in samples),
            debug_options=options,
        )


def quantize_keeping_float(
    model,
    calibration,
    keep_float: tuple[str, ...] = (),
    per_channel: bool = True,
    float_tflite: bytes | None = None,
) -> bytes:
    """Returns the `full_integer` .tflite with the `keep_float` layers left in float (nothing kept:
    the plain full_integer model, less the converter's metadata).

    Raises ValueError for a QAT model, bad calibration, or an unknown layer.
    """
    keep_float = (keep_float,) if isinstance(keep_float, str) else tuple(keep_float)
    if converter.is_qat(model):
        raise ValueError(
            "keep_float applies to float-trained models; a QAT model's fake-quant "
            "ops make the converter quantize every layer"
        )
    calibration = converter.check_calibration(model, calibration, modes.get("full_integer"))
    try:
        debug = quantization_debugger(
            model, calibration, calibration[:1], keep_float, per_channel, float_tflite
        )
        with quiet.stderr():
            return bytes(debug.get_nondebug_quantized_model())
    except ValueError as exc:
        if "debug mode" not in str(exc):
            raise
        raise ValueError(
            "the QuantizationDebugger found nothing left to quantize with "
            f"{', '.join(keep_float)} "
            "kept in float (every op would stay float); keep fewer layers in float"
        ) from None


def layer_statistics(
    model, calibration, samples, keep_float: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, bytes]:
    """The debugger's own per-layer statistics of `model` in `full_integer` over `samples`.

    Returns (the `layer_statistics_dump` table, one row per quantized op, errors in real units
    averaged over samples; the quantized .tflite without debug ops, tensors named the same).
    Raises ValueError as `quantization_debugger`.
    """
    debug = quantization_debugger(model, calibration, samples, keep_float)
    with quiet.stderr():
        debug.run()
        tflite = bytes(debug.get_nondebug_quantized_model())
    text = io.StringIO()
    debug.layer_statistics_dump(text)
    text.seek(0)
    return pd.read_csv(text), tflite
