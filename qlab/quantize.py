"""`quantize(model, mode, calibration)`: one Keras model in, the bytes of a .tflite out."""

from __future__ import annotations

import re

import numpy as np

import qlab  # noqa: F401  (the Keras-2 switch must happen before TensorFlow loads Keras)
from qlab import modes, quiet


class ConversionError(RuntimeError):
    """The TFLite converter refused the model; the message says which layer and why."""


def check_calibration(model, calibration, mode: modes.Mode) -> np.ndarray | None:
    """Validate the calibration samples before the converter sees them."""
    if not mode.needs_calibration:
        return None
    if calibration is None:
        raise ValueError(
            f"mode {mode.name!r} needs calibration data: pass calibration= a float array "
            f"of representative inputs, e.g. qlab.data.calibration() (100 training images)"
        )
    calibration = np.asarray(calibration)
    expected = tuple(model.input_shape[1:])
    if calibration.ndim == len(expected) and calibration.shape == expected:
        raise ValueError(
            f"calibration has the shape of one sample {calibration.shape}; "
            f"pass a batch of samples, shape (n,) + {expected}"
        )
    if calibration.size == 0 or len(calibration) == 0:
        raise ValueError(
            f"calibration set for mode {mode.name!r} is empty: pass at least one sample "
            f"of shape {expected} (a few dozen to a few hundred is typical)"
        )
    if tuple(calibration.shape[1:]) != expected:
        raise ValueError(
            f"calibration samples have shape {tuple(calibration.shape[1:])}, but the model "
            f"takes {expected}: pass an array of shape (n,) + {expected}"
        )
    if not np.issubdtype(calibration.dtype, np.number):
        raise ValueError(f"calibration must be numeric, got dtype {calibration.dtype}")
    calibration = calibration.astype(np.float32)
    if not np.all(np.isfinite(calibration)):
        raise ValueError("calibration contains NaN or infinite values")
    return calibration


def converter_for(model, mode: modes.Mode, calibration: np.ndarray | None):
    """A TFLiteConverter set up from the mode's row of the table."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode.supported_types:
        converter.target_spec.supported_types = [getattr(tf, t) for t in mode.supported_types]
    if mode.supported_ops:
        converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, o) for o in mode.supported_ops]
    if mode.io != "float32":
        converter.inference_input_type = getattr(tf, mode.io)
        converter.inference_output_type = getattr(tf, mode.io)
    if calibration is not None:
        def representative_dataset():
            for sample in calibration:
                yield [sample[np.newaxis]]

        converter.representative_dataset = representative_dataset
    return converter


def quantize(model, mode: str = "float32", calibration=None, *, per_channel: bool = True,
             keep_float: tuple[str, ...] = ()) -> bytes:
    """Convert `model` in `mode` (see qlab.modes) and return the .tflite bytes.

    `per_channel=False` gives weights one scale per tensor instead of one per output channel (the
    converter's switch for older accelerators). `keep_float` names layers (as the layer-error
    tables name them: conv1, ..., softmax) to leave in float in a `full_integer` model, the
    QuantizationDebugger's denylist.
    """
    mode = modes.get(mode)
    if keep_float:
        if mode.name != "full_integer":
            raise ValueError(f"keep_float applies to mode 'full_integer' only (int8 with float fallback, "
                             f"float I/O), not {mode.name!r}: other modes cannot run a float layer")
        return quantize_keeping_float(model, calibration, tuple(keep_float), per_channel)
    if is_qat(model) and not mode.qat:
        valid = ", ".join(m.name for m in modes.MODES.values() if m.qat)
        raise ValueError(
            f"mode {mode.name!r} does not apply to a quantization-aware-trained model: the "
            f"converter turns its fake-quant ops into an int8 model whatever the mode asks. "
            f"Use one of: {valid}"
        )
    calibration = check_calibration(model, calibration, mode)
    converter = converter_for(model, mode, calibration)
    if not per_channel:
        converter._experimental_disable_per_channel = True  # the converter's per-tensor switch
    with quiet.stderr() as log:
        try:
            tflite = bytes(converter.convert())
        except Exception as exc:  # the converter raises several types; all mean the same here
            error = ConversionError(explain(exc, model, mode))
            error.log = log.read()  # what the converter printed, for whoever needs it
            raise error from exc
    if "TFLITE_BUILTINS_INT8" in mode.supported_ops:
        check_integer_only(tflite, model, mode)
    return tflite


def quantize_keeping_float(model, calibration, keep_float: tuple[str, ...] = (),
                           per_channel: bool = True, twin: bytes | None = None) -> bytes:
    """`full_integer` with the named layers left in float, through the QuantizationDebugger's
    denylist (its public route to the converter's quantizer). With nothing kept in float this
    is the plain full_integer model, less the converter's metadata. `twin`: the model's float32
    .tflite, if at hand (it names the layers' tensors)."""
    import tensorflow as tf

    mode = modes.get("full_integer")
    if is_qat(model):
        raise ValueError("keep_float applies to float-trained models; a QAT model's fake-quant "
                         "ops make the converter quantize every layer")
    calibration = check_calibration(model, calibration, mode)
    nodes = denylisted_nodes(model, keep_float, twin) if keep_float else None
    converter = converter_for(model, mode, calibration)
    converter._experimental_disable_per_channel = not per_channel
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    with quiet.stderr():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([s[np.newaxis]] for s in calibration[:1]),
            debug_options=options)
        return bytes(debugger.get_nondebug_quantized_model())


def denylisted_nodes(model, layers: tuple[str, ...], twin: bytes | None = None) -> list[str]:
    """The converter's output tensor names of the ops of `layers` (names as in layer-error tables),
    read from the model's float32 .tflite (`twin`, converted here if not given)."""
    from qlab import capture, tflite_file

    twin = tflite_file.read(quantize(model, "float32") if twin is None else twin)
    by_layer: dict[str, list[str]] = {}
    for op in capture.compute_ops(twin):
        by_layer.setdefault(capture.layer_name(twin, op), []).append(twin.tensors[op.outputs[0]].name)
    unknown = [name for name in layers if name not in by_layer]
    if unknown:
        raise ValueError(f"no layer {', '.join(map(repr, unknown))} to keep in float; "
                         f"the model's layers are: {', '.join(by_layer)}")
    return [tensor for name in layers for tensor in by_layer[name]]


def is_qat(model) -> bool:
    """True if `model` carries tfmot's fake-quant wrappers."""
    return any(type(layer).__name__ in ("QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer")
               for layer in getattr(model, "layers", []))


def check_integer_only(tflite: bytes, model, mode: modes.Mode) -> None:
    """The converter keeps float ops (wrapped in DEQUANTIZE/QUANTIZE) even when asked for
    int8 only; an integer-only device cannot run them, so refuse the model and say where."""
    from qlab import tflite_file

    file = tflite_file.read(tflite)
    offenders = []
    for op in file.ops:
        if op.name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        outs = [file.tensors[i] for i in op.outputs]
        if any(t.type.startswith("FLOAT") for t in outs):
            offenders.append((op.name, [t.name for t in outs]))
    if offenders:
        names = [layer.name for layer in model.layers]
        parts = []
        for op_name, tensor_names in offenders:
            layers = layers_named_in(" ".join(tensor_names), names)
            parts.append(f"{op_name} (layer {', '.join(map(repr, layers)) or 'unknown'})")
        raise ConversionError(
            f"converting to {mode.name!r}: {'; '.join(parts)} has no int8 kernel, so the "
            "converter left it in float, which an integer-only device cannot run. Use mode "
            "'full_integer' (int8 with float fallback), or replace the layer with one that has "
            "an int8 kernel."
        )


def layers_named_in(text: str, layer_names: list[str]) -> list[str]:
    """Layer names that appear as a path segment (…/name/…) in converter or tensor names."""
    return sorted(n for n in layer_names if re.search(rf"(^|/)(quant_)?{re.escape(n)}(/|$|;|\b)", text))


def layers_with_op(model, op_type: str) -> list[str]:
    """Layers whose TensorFlow graph contains an op of `op_type` (e.g. 'Erf')."""
    import tensorflow as tf

    try:
        spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
        graph = tf.function(model).get_concrete_function(spec).graph
    except Exception:  # tracing is best effort: it only improves the message
        return []
    names = [layer.name for layer in model.layers]
    found = set()
    for op in graph.get_operations():
        if op.type == op_type:
            found.update(layers_named_in(op.name, names))
    return sorted(found)


_OP_RE = re.compile(r"'(tfl\.[a-z_0-9]+|tf\.[A-Za-z0-9_]+)' op")


def explain(exc: Exception, model, mode: modes.Mode) -> str:
    """Name the op and the Keras layer the converter complained about, and what to do."""
    text = str(exc)
    ops = sorted(set(_OP_RE.findall(text)))
    layers = layers_named_in(text, [layer.name for layer in model.layers])
    if not layers:
        for op in ops:
            if op.startswith("tf."):
                layers += layers_with_op(model, op[3:])
    what = f"converting to {mode.name!r} failed"
    if ops:
        what += f": op {', '.join(ops)}"
    if layers:
        what += f" in layer {', '.join(repr(n) for n in sorted(set(layers)))}"
    if any(op.startswith("tf.") for op in ops):
        what += " has no TFLite builtin kernel; replace the layer, or remove it from the model"
    elif "TFLITE_BUILTINS_INT8" in mode.supported_ops:
        what += (" has no int8 kernel. Use mode 'full_integer' (int8 with float fallback for "
                 "such ops), or replace the layer with one that has an int8 kernel")
    first_error = next((ln.strip() for ln in text.splitlines() if "error" in ln.lower()), text[:300])
    return f"{what}.\nConverter said: {first_error[-400:]}"


def quantized(config, mode: str, calibration=None, data=None, progress: bool = True) -> bytes:
    """The .tflite of the model `config` (a qlab.train.TrainConfig) in `mode`, cached.

    Trains the model only if its .tflite is not in the cache already.
    """
    from dataclasses import asdict

    from qlab import cache, train
    from qlab.data import fingerprint

    mode = modes.get(mode)
    if mode.needs_calibration and calibration is None:
        from qlab import data as qdata

        calibration = qdata.calibration()
    calibration = calibration if mode.needs_calibration else None
    key = {
        "model": config.key(),
        "mode": asdict(mode),
        "calibration": None if calibration is None else fingerprint(np.asarray(calibration, np.float32)),
    }

    def build() -> bytes:
        model = train.trained(config, data, progress)
        return quantize(model, mode, calibration)

    return cache.cached("tflite", key, build)
