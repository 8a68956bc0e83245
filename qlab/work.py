"""Work per inference (multiply-accumulates per layer) and the latency floor it implies at
the best MAC rate LiteRT reaches on this CPU (measured on a compute-bound probe layer)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab import cache, measure, tflite_file

PROBE = {"size": 16, "channels": 64, "kernel": 3}  # a 3x3 conv, 64->64 channels on 16x16


def macs(tflite: bytes) -> pd.DataFrame:
    """Multiply-accumulates per image of every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED op."""
    model = tflite_file.read(tflite)
    rows = []
    for op in model.ops:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        out = model.tensors[op.outputs[0]].shape
        w = model.tensors[op.inputs[1]].shape
        if op.name == "CONV_2D":  # out (1, H, W, Cout), filter (Cout, kh, kw, Cin)
            n = int(np.prod(out[1:])) * int(np.prod(w[1:]))
        elif op.name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, Cout)
            n = int(np.prod(out[1:])) * w[1] * w[2]
        else:  # filter (out, in), one row per image
            n = int(np.prod(w))
        rows.append({"op": op.index, "op_name": op.name, "output": model.tensors[op.outputs[0]].name,
                     "output_shape": out, "macs": n})
    return pd.DataFrame(rows)


def probe_model():
    """A compute-bound model: enough MACs per byte of weights that arithmetic, not memory, limits it."""
    import qlab  # noqa: F401
    import tf_keras as keras

    s, c, k = PROBE["size"], PROBE["channels"], PROBE["kernel"]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((s, s, c))
    outputs = keras.layers.Conv2D(c, k, padding="same", name="probe")(inputs)
    return keras.Model(inputs, outputs)


def probe_tflite(mode: str) -> bytes:
    """The probe converted in `mode` (cached): float32 or an int8 mode."""
    from qlab import quantize

    def build() -> bytes:
        model = probe_model()
        calibration = np.random.default_rng(0).normal(size=(16, *model.input_shape[1:])).astype(np.float32)
        return quantize.quantize(model, mode, calibration)

    return cache.cached("probe", {**PROBE, "mode": mode}, build)


def peak_macs_per_s(mode: str, kernels: str = "xnnpack", num_threads: int = 1, runs: int = 50) -> float:
    """MACs per second LiteRT reaches on the probe in `mode`: a practical peak for this CPU."""
    tflite = probe_tflite(mode)
    x = np.random.default_rng(0).normal(size=(1, PROBE["size"], PROBE["size"], PROBE["channels"]))
    t = measure.latency(tflite, x.astype(np.float32), kernels=kernels, num_threads=num_threads,
                        warmup=5, runs=runs)["latency_us"]
    return float(macs(tflite).macs.sum() / (t * 1e-6))


def floor_table(models: dict[tuple[str, str], bytes], bench: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model: MACs per image, the floor MACs / peak (XNNPACK, 1 thread), and the measured
    median beside it when a bench table (batch 1, xnnpack, 1 thread) is given."""
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
