"""TFLite's QuantizationDebugger, set up in one place, for its two uses in qlab.

- Its denylist is the public route into the converter's quantizer for keeping chosen layers in
  float in a `full_integer` model (`quantize_keeping_float`).
- Its per-layer statistics are the reference qlab's local view of per-layer error is checked
  against (`layer_statistics`).

The debugger runs on TensorFlow's deprecated `tf.lite.Interpreter`; its deprecation warning is
held back by `qlab.infra.quiet`. TensorFlow is imported lazily, as in `qlab.conversion.converter`.
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
    """The converter's output tensor names of the ops of `layers`, read from the model's float32
    .tflite. A name is a Keras layer (all its ops) or an op's label in layer-error tables
    ('head/softmax' for a Dense named head with a softmax: that op only).

    Args:
        float_tflite: the model's float32 .tflite if at hand; else it is converted here.

    Returns:
        tensor names, the debugger's `denylisted_nodes`.

    Raises:
        ValueError: a layer the model's ops do not come from (the message lists those that exist).
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
    """`tf.lite.experimental.QuantizationDebugger` for `model` in `full_integer`, calibrated on
    `calibration`, fed `samples` one at a time, with the ops of `keep_float` denylisted.

    Returns:
        the debugger, built (its model quantized) but not yet run.

    Raises:
        ValueError: bad calibration (see `qlab.conversion.converter.check_calibration`), or an unknown layer
            in `keep_float`.
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
    """`full_integer` with the named layers left in float, through the debugger's denylist.

    With nothing kept in float this is the plain full_integer model, less the converter's
    metadata.

    Args:
        float_tflite: the model's float32 .tflite, if at hand (it names the layers' tensors).

    Returns:
        the .tflite bytes.

    Raises:
        ValueError: a QAT model (its fake-quant ops make the converter quantize every layer),
            bad calibration, or an unknown layer.
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
            f"the QuantizationDebugger found nothing left to quantize with {', '.join(keep_float)} "
            "kept in float (every op would stay float); keep fewer layers in float"
        ) from None


def layer_statistics(
    model, calibration, samples, keep_float: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, bytes]:
    """The debugger's own per-layer statistics of `model` in `full_integer` over `samples`.

    Returns:
        (the table `layer_statistics_dump` writes: one row per quantized op, with op_name,
        tensor_idx, tensor_name, num_elements, stddev, mean_error, max_abs_error,
        mean_squared_error, scale and zero_point, errors in real units averaged over samples;
        the debugger's quantized model without its debug ops, whose tensors carry the same names).

    Raises:
        ValueError: as `quantization_debugger`.
    """
    debug = quantization_debugger(model, calibration, samples, keep_float)
    with quiet.stderr():
        debug.run()
        tflite = bytes(debug.get_nondebug_quantized_model())
    text = io.StringIO()
    debug.layer_statistics_dump(text)
    text.seek(0)
    return pd.read_csv(text), tflite
