"""`quantize(model, mode, calibration)`: one Keras model in, the bytes of a .tflite out.

Layers kept in float go through the QuantizationDebugger's denylist; integer-only results are
checked for float ops the converter left behind. Cached conversions: `qlab.artifacts.quantized`.
"""

from __future__ import annotations

from qlab.conversion import debugger, modes
from qlab.conversion.converter import (
    ConversionError,
    check_calibration,
    check_convertible,
    convert,
    converter_for,
    is_qat,
    layers_named_in,
)
from qlab.tflite import flatbuffer
from qlab.vocabulary import EDGE_OPS

__all__ = ["ConversionError", "check_integer_only", "quantize"]


def quantize(
    model,
    mode: str = "float32",
    calibration=None,
    *,
    per_channel: bool = True,
    keep_float: tuple[str, ...] = (),
) -> bytes:
    """Returns the .tflite bytes of a tf_keras `model` (float or QAT) in `mode`.

    `calibration`: (n,) + the input's sample shape. `per_channel=False`: one weight scale per
    tensor. `keep_float`: layers (as the layer-error tables name them) left in float in a
    `full_integer` model. Raises TypeError if `model` is not a Keras model; ValueError for an
    unknown mode, bad calibration, `keep_float` outside `full_integer` or on QAT, a QAT model in a
    non-QAT mode or with `per_channel=False`, or training wrappers left on; ConversionError if the
    converter fails, an integer-only result keeps a float op, or a recurrent batch is dynamic.
    """
    if not hasattr(model, "layers") or not hasattr(model, "input_shape"):
        raise TypeError(
            f"quantize takes a tf_keras model, got {type(model).__name__}; load a saved one "
            "first, e.g. tf_keras.models.load_model(path)"
        )
    mode = modes.get(mode)
    keep_float = (keep_float,) if isinstance(keep_float, str) else tuple(keep_float)
    if keep_float:
        if mode.name != "full_integer":
            raise ValueError(
                f"keep_float applies to mode 'full_integer' only (int8 with float fallback, "
                f"float I/O), not {mode.name!r}: other modes cannot run a float layer"
            )
        return debugger.quantize_keeping_float(model, calibration, tuple(keep_float), per_channel)
    if is_qat(model) and not mode.qat:
        valid = ", ".join(m.name for m in modes.MODES.values() if m.qat)
        raise ValueError(
            f"mode {mode.name!r} does not apply to a quantization-aware-trained model: the "
            f"converter turns its fake-quant ops into an int8 model whatever the mode asks. "
            f"Use one of: {valid}"
        )
    if is_qat(model) and not per_channel:
        raise ValueError(
            "per_channel=False does not apply to a quantization-aware-trained model: "
            "its fake-quant ops "
            "already fixed one weight scale per output channel, and the converter keeps them. "
            "For per-tensor "
            "weights, train QAT with tfmot's Default8BitQuantizeScheme(disable_per_axis=True), "
            "or quantize "
            "the float model after training with per_channel=False"
        )
    check_convertible(model, mode)
    calibration = check_calibration(model, calibration, mode)
    tflite = convert(converter_for(model, mode, calibration, per_channel), model, mode)
    if "TFLITE_BUILTINS_INT8" in mode.supported_ops:
        check_integer_only(tflite, model, mode)
    return tflite


def check_integer_only(tflite: bytes, model, mode: modes.Mode) -> None:
    """Refuses an "integer-only" file that still computes in float (the converter keeps float ops
    wrapped in DEQUANTIZE/QUANTIZE even when asked for int8 only).

    Raises ConversionError naming each float op and the Keras layer it came from.
    """
    file = flatbuffer.read(tflite)
    offenders = []
    for op in file.ops:
        if op.name in EDGE_OPS:
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
