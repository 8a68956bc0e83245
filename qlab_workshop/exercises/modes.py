"""Checked exercises of notebook 02 (post-training modes): quantize images for an int8 input by
hand, the bytes each mode spends on weights, and which modes need a representative dataset.

The checks compare with LiteRT (the int8 model's own input tensor and outputs), with the `.tflite`
files read by `qlab.tflite.flatbuffer`, and with qlab's table of modes, computed when the check
runs. Called with the answer only, they use the baseline's files, cached (`TrainConfig()`).
"""

from __future__ import annotations

import numpy as np

from qlab import arith, artifacts
from qlab.conversion import modes as mode_table
from qlab.tflite import flatbuffer
from qlab.tflite.runtime import Runtime
from qlab.training import data, fit
from qlab.vocabulary import WEIGHT_INPUTS
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong
from qlab_workshop.exercises.primer import explain_int8

INPUT_HINT = (
    "read scale, zero_point = rt.input['quantization'] (the input tensor's, not the output's), "
    "then q = clip(round(x / scale) + zero_point, -128, 127), halves away from zero, as np.int8"
)


@feedback.checked("02", hint=INPUT_HINT)
def check_input_quantization(to_model_input, tflite: bytes | None = None, x=None):
    """Check the learner's `to_model_input(rt, x) -> int8 array` for an int8-input model: the same
    integers as `Runtime.quantize_input` (qlab.arith), and LiteRT's outputs on them equal to the
    outputs on qlab's.

    Args:
        to_model_input: the learner's function of a `qlab.tflite.runtime.Runtime` and float images.
        tflite: an int8-input .tflite (default: the baseline's integer_only file, from the cache).
        x: float images (default: the first 100 test images).
    Returns:
        the message for a right answer.
    Raises:
        Wrong: integers or outputs differ (named slips as
            `qlab_workshop.exercises.primer.explain_int8`, plus the output tensor's scale and zero
            point used, and raw pixels cast to int8).
        Unanswered: the function returns a placeholder.
    """
    config = fit.TrainConfig()
    tflite = (
        tflite
        if tflite is not None
        else artifacts.quantized(config, "integer_only", progress=False)
    )
    x = np.asarray(data.load(config.dataset).x_test[:100] if x is None else x, np.float32)
    rt = Runtime(tflite)
    if rt.input_dtype != np.int8:
        raise ValueError(
            f"this check needs a model with int8 input; this one takes {rt.input_dtype}"
        )
    scale, zero_point = rt.input["quantization"]
    out_scale, out_zero_point = rt.output["quantization"]
    qmin, qmax = arith.integer_range(np.int8)
    got = feedback.answered(to_model_input(rt, x.copy()))
    explain_int8(
        got,
        x,
        scale,
        zero_point,
        "your input integers",
        mistakes={
            "you used the output tensor's scale and zero point; the input tensor has its own "
            "(rt.input).": arith.quantize(x, out_scale, out_zero_point, qmin, qmax),
            "these are the raw pixels cast to int8, the article's mistake: scale and zero point "
            "skipped.": x.astype(np.int8),
        },
        hint=INPUT_HINT,
    )
    mine, reference = rt.invoke_raw(np.asarray(got)), rt.invoke_raw(rt.quantize_input(x))
    if not np.array_equal(mine, reference):
        raise Wrong(
            "your integers equal qlab's, yet LiteRT's outputs differ: run the model again.",
            INPUT_HINT,
        )
    return (
        f"scale {scale:.6f}, zero point {zero_point}: your {x.shape[0]} images give LiteRT "
        "exactly the outputs qlab's predict() gets."
    )


BYTES_HINT = (
    "bytes per value: float32 4, float16 2; the int8 modes store weights in 1 byte but biases in "
    "int32 (4 bytes); count kernels and biases apart (layer.kernel, layer.bias)"
)
BYTES_MODES = ("float32", "float16", "integer_only")
"""The modes the weight-bytes exercise asks about."""


def weight_bytes(tflite: bytes) -> int:
    """The bytes of constant data a .tflite stores for the weights and biases of its weighted ops
    (CONV_2D, FULLY_CONNECTED, ...), read through the DEQUANTIZE a float16 file puts before them.

    Returns:
        the total, in bytes.
    Raises:
        InvalidModelError: bytes that are not a .tflite (see `qlab.tflite.flatbuffer.read`).
    """
    model = flatbuffer.read(tflite)
    producer = {out: op for op in model.ops for out in op.outputs}
    total = 0
    for op in model.ops:
        for index in (op.inputs[i] for i in WEIGHT_INPUTS.get(op.name, ()) if i < len(op.inputs)):
            while index in producer and producer[index].name == "DEQUANTIZE":
                index = producer[index].inputs[0]
            tensor = model.tensors[index] if index >= 0 else None
            total += 0 if tensor is None or tensor.data is None else tensor.data.nbytes
    return total


@feedback.checked("02", hint=BYTES_HINT)
def check_weight_bytes(predicted: dict):
    """Check the learner's predicted weight bytes per mode against the files: {mode: bytes} for the
    modes of `BYTES_MODES`, each equal to `weight_bytes` of the baseline's file in that mode.

    Args:
        predicted: {mode name: predicted bytes of weights and biases}, for the baseline's files
            (`qlab.training.fit.TrainConfig()`).
    Returns:
        the message for a right answer, with each file's whole size beside it.
    Raises:
        Wrong: a mode missing or a number off (named slips: int8 biases counted as 1 byte, float16
            at 4 bytes, every value at 4 bytes).
        Unanswered: a placeholder.
    """
    predicted = feedback.answered(predicted)
    if not isinstance(predicted, dict):
        raise Wrong(
            f"expected a dict {{mode: bytes}} for {', '.join(BYTES_MODES)}, got "
            f"{type(predicted).__name__}.",
            BYTES_HINT,
        )
    missing = [m for m in BYTES_MODES if m not in predicted]
    if missing:
        raise Wrong(f"no prediction for {', '.join(missing)}.", BYTES_HINT)
    config = fit.TrainConfig()
    files = {m: artifacts.quantized(config, m, progress=False) for m in BYTES_MODES}
    truth = {m: weight_bytes(t) for m, t in files.items()}
    params = truth["float32"] // 4  # every weight and bias is one float32 there
    for mode in BYTES_MODES:
        got = feedback.answered(predicted[mode])
        if isinstance(got, (float, np.floating, np.integer)) and float(got).is_integer():
            got = int(got)
        if got == truth[mode]:
            continue
        slips = {
            k * params: f"that is {k} byte{'s' if k > 1 else ''} per parameter{text}."
            for k, text in (
                (1, ": in the int8 modes the biases stay int32, 4 bytes each"),
                (2, ", float16's"),
                (4, ", float32's"),
            )
        }
        message = slips.get(got, "")
        shown = f"{got:,}" if isinstance(got, int) else repr(got)
        raise Wrong(
            f"{mode}: the file holds {truth[mode]:,} bytes of weights and biases; you predicted "
            f"{shown}. {message}".rstrip(),
            BYTES_HINT,
        )
    sizes = ", ".join(f"{m} {truth[m]:,} of {len(files[m]):,}" for m in BYTES_MODES)
    return (
        f"all three match the files (weight bytes of file bytes: {sizes}); the rest is the graph "
        "itself."
    )


CALIBRATION_HINT = (
    "a mode needs a representative dataset when it stores activations as integers: the converter "
    "must know each activation's range before any input arrives"
)


@feedback.checked("02", hint=CALIBRATION_HINT)
def check_needs_calibration(answer):
    """Check which modes need a representative dataset against qlab's table of modes.

    Args:
        answer: the mode names (any iterable of str).
    Returns:
        the message for a right answer.
    Raises:
        Wrong: an unknown name, or a mode too many or too few (named: dynamic_range and float16
            quantize no stored activation; int16x8 does).
        Unanswered: a placeholder.
    """
    answer = feedback.answered(answer)
    names = {answer} if isinstance(answer, str) else set(answer)
    unknown = names - set(mode_table.MODES)
    if unknown:
        raise Wrong(
            f"unknown mode names: {', '.join(sorted(unknown))}; the modes are "
            f"{', '.join(mode_table.MODES)}.",
            CALIBRATION_HINT,
        )
    want = {m.name for m in mode_table.MODES.values() if m.needs_calibration}
    extra, missing = sorted(names - want), sorted(want - names)
    why = {
        "dynamic_range": (
            "dynamic_range measures each activation's range at run time, input by input."
        ),
        "float16": "float16 changes the weights' type only; activations stay float32.",
        "float32": "float32 quantizes nothing.",
        "int16x8": (
            "int16x8 stores activations as int16: their ranges must be known in advance too."
        ),
    }
    if extra or missing:
        parts = ([f"not needed by {', '.join(extra)}"] if extra else []) + (
            [f"needed by {', '.join(missing)} too"] if missing else []
        )
        reasons = " ".join(why[m] for m in extra + missing if m in why)
        raise Wrong(f"{'; '.join(parts)}. {reasons}".rstrip(), CALIBRATION_HINT)
    return (
        f"{', '.join(sorted(want))}: the modes with integer activations, whose ranges come from "
        "calibration."
    )
