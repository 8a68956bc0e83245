"""Calibration made visible: the activation ranges a deployed file holds, ranges chosen by other
methods (`qlab.analysis.ranges`) put into a deployable file through ai-edge-quantizer, and each
layer's error split into rounding and clipping on the file's grid.

AEQ's static recipes quantize every activation from a range per tensor (its QSVs, by tensor
name); its own algorithms other than min-max choose *weight* ranges only. So qlab captures each
activation of the float32 file over the calibration set, chooses its range by the method and
hands AEQ those ranges as the QSVs; AEQ builds the grid by its rule (`ranges.aeq_grid`), which
`method_file` checks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.analysis import capture, grid, ranges, rounding
from qlab.conversion import aeq
from qlab.tflite import flatbuffer, naming

RANGE_COLUMNS = ("layer", "op", "tensor", "type", "scale", "zero_point", "low", "high")
"""`file_ranges`' columns: the layer label ("input" for the model input), the op writing the tensor
("INPUT" for the model input), tensor name, its type
(INT8, INT16, ...), its scale (real units per step) and zero point, and the real range its integers
cover, low = (qmin − zero_point)·scale and high = (qmax − zero_point)·scale."""


def activations(float32_tflite: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    """Returns {tensor name: float32 (n,) + sample shape}: the float32 file's input and every op
    output the interpreter keeps, over samples `x`.

    Raises ValueError for a quantized file or inputs of the wrong shape."""
    model = flatbuffer.read(float32_tflite)
    if any(t.quantized for t in model.tensors):
        raise ValueError("activations are captured from the float32 .tflite; this one is quantized")
    return {model.tensors[i].name: v for i, v in capture.run(float32_tflite, x).items()}


def method_ranges(
    float32_tflite: bytes, calibration: np.ndarray, setting: str, bits: int = 8
) -> dict[str, tuple]:
    """Returns {tensor name: (low, high)}: the range method `setting` (`ranges.choose`) applied to
    every activation in AEQ's QSVs, over the calibration samples.

    Raises:
        ValueError: an unknown setting (`ranges.parse`); a method that gives some tensor an empty
            range (e.g. a percentile near 50 on a ReLU output).
        qlab.conversion.aeq.AEQError: AEQ cannot calibrate the model."""
    ranges.parse(setting)
    captured = activations(float32_tflite, calibration)
    wanted = aeq.calibrate(float32_tflite, calibration[:1])  # which tensors AEQ quantizes
    missing = sorted(set(wanted) - set(captured))
    if missing:
        raise ValueError(
            f"tensors AEQ quantizes but LiteRT does not keep for qlab to read: {', '.join(missing)}"
        )
    chosen = {name: ranges.choose(captured[name], setting, bits) for name in wanted}
    empty = [name for name, (low, high) in chosen.items() if not max(high, 0.0) - min(low, 0.0) > 0]
    if empty:
        raise ValueError(
            f"{setting} gives an empty range [0, 0] to {len(empty)} tensor(s), e.g. {empty[0]!r} "
            "(most of its values are one number, such as a ReLU's zeros): no grid can be built; "
            "use min-max or a higher percentile"
        )
    return chosen


def qsvs(chosen: dict[str, tuple]) -> dict:
    """Returns ranges as AEQ's QSVs: {tensor name: {"min": float32 (1,), "max": float32 (1,)}}."""
    return {
        name: {"min": np.array([low], np.float32), "max": np.array([high], np.float32)}
        for name, (low, high) in chosen.items()
    }


def method_file(
    float32_tflite: bytes, calibration: np.ndarray, setting: str
) -> tuple[bytes, pd.DataFrame]:
    """A static int8 file (AEQ's `static_wi8_ai8`) with the activation ranges of method `setting`,
    and the check that it holds them.

    Returns (tflite bytes, DataFrame, one row per activation: tensor, low, high (chosen), scale and
    zero_point (the file's), expected_scale and expected_zero_point (`ranges.aeq_grid`),
    scale_rel_error, constraint ("" or AEQ's constraint that ties or fixes the grid)).

    Raises ValueError as `method_ranges`, qlab.conversion.aeq.AEQError if AEQ refused the model."""
    chosen = method_ranges(float32_tflite, calibration, setting)
    tflite = aeq.quantize(float32_tflite, "static_wi8_ai8", qsvs=qsvs(chosen))
    stored = {t.name: t for t in flatbuffer.read(tflite).tensors if t.quantized and t.data is None}
    tied = constrained(flatbuffer.read(float32_tflite))
    rows = []
    for name, (low, high) in chosen.items():
        scale, zero_point = ranges.aeq_grid(low, high, 8)
        tensor = stored.get(name)
        file_scale = float(tensor.scale[0]) if tensor is not None else np.nan
        rows.append(
            {
                "tensor": name,
                "low": low,
                "high": high,
                "scale": file_scale,
                "zero_point": float(tensor.zero_point[0]) if tensor is not None else np.nan,
                "expected_scale": float(scale),
                "expected_zero_point": float(zero_point),
                "scale_rel_error": abs(file_scale - float(scale)) / float(scale),
                "constraint": tied.get(name, ""),
            }
        )
    return tflite, pd.DataFrame(rows)


def constrained(model: flatbuffer.ModelFile) -> dict[str, str]:
    """Returns {tensor name: AEQ's constraint name} for the tensors whose grid AEQ ties or fixes:
    outputs of constrained ops, and inputs of ops that take their output's scale
    (`qlab.conversion.aeq.constraints`)."""
    rules = aeq.constraints()
    tied = {}
    for op in model.ops:
        rule = rules.get(op.name, "")
        if rule == "same_as_output_scale":
            tied.update(
                {
                    model.tensors[i].name: rule
                    for i in op.inputs
                    if i >= 0 and model.tensors[i].data is None
                }
            )
        if rule:
            tied.update({model.tensors[i].name: rule for i in op.outputs if i >= 0})
    return tied


def file_ranges(tflite: bytes, keras_model=None) -> pd.DataFrame:
    """Returns a DataFrame with `RANGE_COLUMNS`, one row per quantized activation (the input,
    then each compute op's output), in op order."""
    model = flatbuffer.read(tflite)
    labels = naming.labels(model, keras_model)
    wanted = [("input", "INPUT", model.inputs[0])] + [
        (labels[op.index], op.name, op.outputs[0]) for op in naming.compute_ops(model)
    ]
    rows = []
    for label, op, index in wanted:
        tensor = model.tensors[index]
        if not tensor.quantized:
            continue
        g = grid.of_tensor(tensor, narrow_range=False)
        rows.append(
            {
                "layer": label,
                "op": op,
                "tensor": tensor.name,
                "type": tensor.type,
                "scale": float(g.scale[0]),
                "zero_point": int(g.zero_point[0]),
                "low": float(g.low[0]),
                "high": float(g.high[0]),
            }
        )
    return pd.DataFrame(rows, columns=list(RANGE_COLUMNS))


def layer_splits(
    tflite: bytes, float_tflite: bytes, x: np.ndarray, keras_model=None
) -> pd.DataFrame:
    """Each quantized activation's error on the file's grid, split into rounding and clipping: the
    float32 reference's values over `x` through that grid (`rounding.split`).

    Returns a DataFrame, one row per quantized activation: layer, tensor, rounding_mse,
    clipping_mse, total_mse, clipped_fraction, rmse/scale. Raises ValueError for a float_tflite
    that is not the float32 file of the same model."""
    pair = capture.pair(tflite, float_tflite, keras_model)
    captured = capture.run(float_tflite, x)
    rows = []
    for layer in pair.layers:
        tensor = layer.output(pair)
        index = layer.reference.outputs[0]
        if not tensor.quantized or index not in captured:
            continue
        split = rounding.split(captured[index], grid.of_tensor(tensor, narrow_range=False))
        rows.append({"layer": layer.name, "tensor": tensor.name, **split})
    return pd.DataFrame(rows)
