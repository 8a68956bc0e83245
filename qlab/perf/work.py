"""Work per inference (multiply-accumulates per layer) and the latency floor it implies at
the best MAC rate LiteRT reaches on this CPU (measured on a compute-bound probe layer)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
import tf_keras as keras

from qlab import cache, measure, models, quantize, tflite_file
from qlab.vocabulary import LSTM_INPUTS, WEIGHTED_OPS

PROBE = {"size": 16, "channels": 64, "kernel": 3}  # a 3x3 conv, 64->64 channels on 16x16
"""The probe layer: input height and width, channels in and out, kernel size."""


def macs(tflite: bytes) -> pd.DataFrame:
    """Multiply-accumulates per image of every CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
    UNIDIRECTIONAL_SEQUENCE_LSTM op.

    Counted from the stored shapes: CONV_2D out_h·out_w·out_c·kh·kw·in_c, DEPTHWISE_CONV_2D
    out_h·out_w·out_c·kh·kw, FULLY_CONNECTED units·depth per input row (rows per image: the
    input's elements / depth), LSTM time steps × the elements of its eight gate weight matrices
    (and its projection). TRANSPOSE_CONV is not counted.

    Returns:
        DataFrame, one row per op: op (index), op_name, output (tensor name), output_shape
        (tuple, as stored), macs (MACs per image, int).

    Raises:
        InvalidModelError: bytes that are not a readable .tflite.
    """
    model = tflite_file.read(tflite)
    rows = []
    for op in model.ops:
        if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM":  # input (batch, steps, features)
            steps = model.tensors[op.inputs[0]].shape[1]
            matrices = [i for i in LSTM_INPUTS["weights"] + LSTM_INPUTS["projection"][:1]
                        if i < len(op.inputs) and op.inputs[i] >= 0]
            n = steps * sum(int(np.prod(model.tensors[op.inputs[i]].shape)) for i in matrices)
        elif op.name not in WEIGHTED_OPS or op.name == "TRANSPOSE_CONV":
            continue
        else:
            n = _weighted_macs(model, op)
        out = model.tensors[op.outputs[0]].shape
        rows.append({"op": op.index, "op_name": op.name, "output": model.tensors[op.outputs[0]].name,
                     "output_shape": out, "macs": n})
    return pd.DataFrame(rows)


def _weighted_macs(model, op) -> int:
    out = model.tensors[op.outputs[0]].shape
    w = model.tensors[op.inputs[1]].shape
    if op.name == "CONV_2D":  # out (1, H, W, Cout), filter (Cout, kh, kw, Cin)
        return int(np.prod(out[1:])) * int(np.prod(w[1:]))
    if op.name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, Cout)
        return int(np.prod(out[1:])) * w[1] * w[2]
    rows = int(np.prod(model.tensors[op.inputs[0]].shape[1:])) // w[1]  # FULLY_CONNECTED: (out, in)
    return rows * int(np.prod(w))


def probe_model():
    """A compute-bound model: enough MACs per byte of weights that arithmetic, not memory, limits it.

    Returns:
        a tf_keras model of one 3x3 conv, 64 to 64 channels on 16x16 inputs, seeded weights.
    """
    s, c, k = PROBE["size"], PROBE["channels"], PROBE["kernel"]
    keras.utils.set_random_seed(0)
    with models.fresh_names():
        inputs = keras.Input((s, s, c), name="probe_input")
        outputs = keras.layers.Conv2D(c, k, padding="same", name="probe")(inputs)
        return keras.Model(inputs, outputs, name="probe_model")


def probe_tflite(mode: str) -> bytes:
    """The probe converted in `mode` (cached): float32 or an int8 mode.

    Args:
        mode: a mode name of `qlab.modes` (calibrated on 16 seeded normal samples).

    Returns:
        the .tflite bytes.

    Raises:
        ValueError: an unknown mode.
    """
    def build() -> bytes:
        model = probe_model()
        calibration = np.random.default_rng(0).normal(size=(16, *model.input_shape[1:])).astype(np.float32)
        return quantize.quantize(model, mode, calibration)

    return cache.cached("probe", {**PROBE, "mode": mode}, build)


def peak_macs_per_s(mode: str, kernels: str = "xnnpack", num_threads: int = 1, runs: int = 50) -> float:
    """MACs per second LiteRT reaches on the probe in `mode`: a practical peak for this CPU.

    Args:
        mode: the probe's mode ("float32", "integer_only", ...).
        kernels, num_threads: the LiteRT setting (XNNPACK, one thread by default).
        runs: timed invokes, after 5 warmup invokes (`qlab.measure.latency`).

    Returns:
        MACs per second, a float: the probe's MACs over its median single-image latency.

    Raises:
        ValueError: an unknown mode or kernels, or runs below 1.
    """
    tflite = probe_tflite(mode)
    x = np.random.default_rng(0).normal(size=(1, PROBE["size"], PROBE["size"], PROBE["channels"]))
    t = measure.latency(tflite, x.astype(np.float32), kernels=kernels, num_threads=num_threads,
                        warmup=5, runs=runs)["latency_us"]
    return float(macs(tflite).macs.sum() / (t * 1e-6))


def floor_table(models: dict[tuple[str, str], bytes], bench: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model: MACs per image, the floor MACs / peak (XNNPACK, 1 thread), and the measured
    median beside it when a bench table (batch 1, xnnpack, 1 thread) is given.

    float32 and float16 models are held to the float32 peak, every other mode (dynamic range
    included: int8 math) to the int8 peak of the integer_only probe. Both peaks are measured
    on each call.

    Args:
        models: {(training, mode): .tflite bytes}.
        bench: a table from `qlab.perf.bench.run`, or None.

    Returns:
        DataFrame, one row per model: training, mode, macs (MACs per image), peak_kind
        (float32 or int8), peak_gmacs (GMAC/s), floor_us (µs); with `bench`, measured_us
        (median per invoke, µs) and measured_vs_floor (ratio) where it has that model.
    """
    peaks = {"float32": peak_macs_per_s("float32"), "int8": peak_macs_per_s("integer_only")}
    rows = []
    for (training, mode), tflite in models.items():
        total = int(macs(tflite).macs.sum())
        kind = "float32" if mode in ("float32", "float16") else "int8"  # dynamic range: int8 math
        row = {"training": training, "mode": mode, "macs": total, "peak_kind": kind,
               "peak_gmacs": peaks[kind] / 1e9, "floor_us": total / peaks[kind] * 1e6}
        if bench is not None:
            hit = bench[(bench.training == training) & (bench["mode"] == mode) & (bench.kernels == "xnnpack")
                        & (bench.threads == 1) & (bench.batch == 1)]
            if len(hit):
                row["measured_us"] = float(hit.median_us.iloc[0])
                row["measured_vs_floor"] = row["measured_us"] / row["floor_us"]
        rows.append(row)
    return pd.DataFrame(rows)
