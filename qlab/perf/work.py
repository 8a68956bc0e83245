"""Work per inference (multiply-accumulates per layer), the peak MAC rate LiteRT reaches on this CPU
per data type (float32 and int8, measured on compute-bound probe layers in interleaved rounds), and
the latency floor the two imply: a model's MACs over its data type's peak."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tf_keras as keras

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
from qlab.conversion import modes, to_tflite
from qlab.infra import cache
from qlab.perf import bench, cpu
from qlab.tflite import flatbuffer
from qlab.training import models
from qlab.vocabulary import LSTM_INPUTS, WEIGHTED_OPS

PROBES = {
    "conv": {"size": 32, "channels": 64, "kernel": 3, "batch": 1},
    "fc": {"depth": 1024, "units": 1024, "batch": 128},
}
"""The probe layers: large enough that arithmetic, not memory or the invoke's fixed cost, limits
them, so that their MAC rate is the CPU's practical peak for one data type.

- conv: 3x3, 64 to 64 channels on a 32x32 input ("same" padding), batch 1: 37.7 M MACs per invoke
  from 36,864 weights and 65,536 input values (each weight used 1,024 times, each input 576 times),
  all in a core's L2 cache. A 16x16 input gave the same GMAC/s (AVX-512 VNNI machine): the fixed
  cost of an invoke is already negligible.
- fc: 1,024 inputs to 1,024 units on a batch of 128 rows: 134 M MACs per invoke. With one row each
  weight (1 MB in int8, 4 MB in float32) is read for one multiply-add and memory limits it (7.8
  GMAC/s float32 on that machine); more rows reuse the weights and the rate levels off (float32 50,
  67 and 78 GMAC/s at 16, 64 and 256 rows)."""
DTYPES = {"float32": "float32", "int8": "integer_only"}
"""Each peak's data type and the mode its probe is converted in (int8 in, int8 out)."""
PEAK_KERNELS = ("xnnpack", "builtin")
"""The kernel choices peaks are measured for (the reference kernels are plain loops, not a peak)."""
PEAK_CONFIG = bench.BenchConfig(
    kernels=("xnnpack",), threads=(1,), batches=(1,), rounds=15, block_ms=10.0, warmup=2, loop=False
)
"""The default timing of the probes: 15 interleaved rounds of about 10 ms per data type."""


def gmacs(macs: float, latency_us: float) -> float:
    """Returns GMAC/s (1e9 MACs per second) from `macs` done in `latency_us`."""
    return macs / latency_us / 1e3


def peak_kind(mode: str) -> str:
    """Which peak a mode's model is held to, read from `qlab.conversion.modes`.

    Returns "int8" for a mode with int8 weights (dynamic range included: its weighted ops compute in
    int8), else "float32" (float16 weights are computed in float32)."""
    return "int8" if modes.get(mode).weights == "int8" else "float32"


def macs(tflite: bytes) -> pd.DataFrame:
    """Multiply-accumulates per image of every CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
    UNIDIRECTIONAL_SEQUENCE_LSTM op, from the stored shapes: CONV_2D out_h·out_w·out_c·kh·kw·in_c,
    DEPTHWISE_CONV_2D out_h·out_w·out_c·kh·kw, FULLY_CONNECTED units·depth per input row (rows per
    image: the input's elements / depth), LSTM time steps × the elements of its eight gate weight
    matrices (and its projection). TRANSPOSE_CONV is not counted.

    Returns:
        DataFrame, one row per op: op (index), op_name, output (tensor name), output_shape
        (tuple, as stored), macs (MACs per image, int).

    Raises:
        InvalidModelError: bytes that are not a readable .tflite."""
    model = flatbuffer.read(tflite)
    rows = []
    for op in model.ops:
        if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM":  # input (batch, steps, features)
            steps = model.tensors[op.inputs[0]].shape[1]
            matrices = [
                i
                for i in LSTM_INPUTS["weights"] + LSTM_INPUTS["projection"][:1]
                if i < len(op.inputs) and op.inputs[i] >= 0
            ]
            n = steps * sum(int(np.prod(model.tensors[op.inputs[i]].shape)) for i in matrices)
        elif op.name not in WEIGHTED_OPS or op.name == "TRANSPOSE_CONV":
            continue
        else:
            n = _weighted_macs(model, op)
        out = model.tensors[op.outputs[0]].shape
        rows.append(
            {
                "op": op.index,
                "op_name": op.name,
                "output": model.tensors[op.outputs[0]].name,
                "output_shape": out,
                "macs": n,
            }
        )
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


def probe_model(probe: str = "conv"):
    """Returns the probe layer `probe` of `PROBES` as a seeded tf_keras model of one Conv2D
    ("conv") or Dense ("fc") layer. Raises KeyError for an unknown probe."""
    p = PROBES[probe]
    keras.utils.set_random_seed(0)
    with models.fresh_names():
        if probe == "conv":
            inputs = keras.Input((p["size"], p["size"], p["channels"]), name="probe_input")
            outputs = keras.layers.Conv2D(p["channels"], p["kernel"], padding="same", name="probe")(
                inputs
            )
        else:
            inputs = keras.Input((p["depth"],), name="probe_input")
            outputs = keras.layers.Dense(p["units"], name="probe")(inputs)
        return keras.Model(inputs, outputs, name=f"probe_{probe}")


def probe_input(probe: str = "conv") -> np.ndarray:
    """Returns seeded standard-normal float32 inputs (batch, *input shape) for one invoke."""
    model = probe_model(probe)
    rng = np.random.default_rng(0)
    return rng.normal(size=(PROBES[probe]["batch"], *model.input_shape[1:])).astype(np.float32)


def probe_tflite(mode: str, probe: str = "conv") -> bytes:
    """Returns the probe's .tflite bytes in `mode` (cached), calibrated on 16 seeded normal
    samples. Raises ValueError for an unknown mode, KeyError for an unknown probe."""

    def build() -> bytes:
        model = probe_model(probe)
        calibration = (
            np.random.default_rng(0).normal(size=(16, *model.input_shape[1:])).astype(np.float32)
        )
        return to_tflite.quantize(model, mode, calibration)

    return cache.cached("probe", {"probe": probe, **PROBES[probe], "mode": mode}, build)


def peaks(
    kernels=("xnnpack",), config: bench.BenchConfig = PEAK_CONFIG, probes=tuple(PROBES)
) -> pd.DataFrame:
    """The MAC rate LiteRT reaches on each probe in float32 and in int8, one thread: this CPU's
    practical peak per data type. The two files of a probe are timed in interleaved rounds, so the
    int8-over-float32 ratio of each round is taken on the same state of the machine. Only the
    rounds, block length and warmup of `config` are used.

    Returns:
        DataFrame, one row per (probe, kernels, dtype): probe, shape (what the probe computes),
        kernels, threads (1), batch, dtype, macs (per invoke), median_us (per invoke), gmacs (median
        over rounds of MACs / the round's median invoke time), gmacs_min, gmacs_max, rounds,
        vs_float32, vs_float32_min, vs_float32_max (the dtype's GMAC/s over float32's in the same
        round; 1 for float32).

    Raises:
        ValueError: kernels outside `PEAK_KERNELS`, or a config `BenchConfig.check` refuses.
        KeyError: an unknown probe."""
    unknown = [k for k in kernels if k not in PEAK_KERNELS]
    if unknown or not kernels:
        raise ValueError(
            f"peaks are measured for kernels {', '.join(PEAK_KERNELS)}; got {list(kernels)!r}"
        )
    config.check()
    rows = []
    for probe in probes:
        files = {kind: probe_tflite(mode, probe) for kind, mode in DTYPES.items()}
        batch = PROBES[probe]["batch"]
        per_invoke = int(macs(files["float32"]).macs.sum()) * batch
        x = probe_input(probe)
        for k in kernels:
            times = bench.time_rounds(files, x, k, 1, batch, config)
            for kind, rounds in times.items():
                rates = gmacs(per_invoke, np.array([np.median(r) for r in rounds]))
                vs = bench.round_ratios(
                    times["float32"], rounds
                )  # float32's time over this one's: rate ratio
                rows.append(
                    {
                        "probe": probe,
                        "shape": _shape(probe),
                        "kernels": k,
                        "threads": 1,
                        "batch": batch,
                        "dtype": kind,
                        "macs": per_invoke,
                        "median_us": float(np.median(np.concatenate(rounds))),
                        "gmacs": float(np.median(rates)),
                        "gmacs_min": float(rates.min()),
                        "gmacs_max": float(rates.max()),
                        "rounds": len(rounds),
                        "vs_float32": float(np.median(vs)),
                        "vs_float32_min": float(vs.min()),
                        "vs_float32_max": float(vs.max()),
                    }
                )
    return pd.DataFrame(rows)


def _shape(probe: str) -> str:
    p = PROBES[probe]
    if probe == "conv":
        return (
            f"conv {p['kernel']}×{p['kernel']}, {p['channels']}→{p['channels']} channels "
            f"on {p['size']}×{p['size']}"
        )
    return f"fully connected {p['depth']:,}→{p['units']:,}, {p['batch']} rows"


def best_peaks(peak_table: pd.DataFrame, kernels: str = "xnnpack") -> dict:
    """Returns {"float32": GMAC/s, "int8": GMAC/s}, the highest median rate over the probes
    for `kernels`; a data type not measured is absent."""
    sub = peak_table[peak_table.kernels == kernels]
    return {kind: float(part.gmacs.max()) for kind, part in sub.groupby("dtype")}


def peak_verdict(peak_table: pd.DataFrame, kernels: str = "xnnpack") -> str:
    """int8's peak against float32's on this CPU, computed from the rounds.

    Returns one sentence, e.g. "int8 peak / float32 peak = 4.3× [4.1–4.4] (conv), 3.4× [3.3–3.5]
    (fc) on this CPU (AVX-512 VNNI), xnnpack, 1 thread: int8 reaches a higher MAC rate than float32
    in every round of every probe." Raises ValueError when no int8 rows exist for `kernels`."""
    sub = peak_table[(peak_table.kernels == kernels) & (peak_table.dtype == "int8")]
    if not len(sub):
        raise ValueError(f"no int8 peak measured for kernels {kernels!r}")
    parts = ", ".join(
        f"{r.vs_float32:.1f}× [{r.vs_float32_min:.1f}–{r.vs_float32_max:.1f}] ({r.probe})"
        for r in sub.itertuples()
    )
    time_low, time_high = (
        1 / sub.vs_float32_max.max(),
        1 / sub.vs_float32_min.min(),
    )  # int8's time over float32's
    said = {
        "faster": "reaches a higher MAC rate than float32 in every round of every probe",
        "slower": "reaches a lower MAC rate than float32 in every round of every probe",
        "same": "reaches float32's MAC rate within 5 % in every round",
        "mixed": "is mixed: above float32's MAC rate in some rounds or probes, below in others",
    }
    path = (
        ", ".join(dict.fromkeys(sub.int8_path))
        if "int8_path" in sub.columns
        else cpu.describe()["int8_path"]
    )
    return (
        f"int8 peak / float32 peak = {parts} on this CPU ({path}), {kernels}, 1 thread: int8 "
        f"{said[bench.verdict(time_low, time_high)]}."
    )


def with_floor(bench_table: pd.DataFrame, tflites: dict, peak_table: pd.DataFrame) -> pd.DataFrame:
    """The bench table (`qlab.perf.bench.run`) with each row's work and floor beside its latency.

    Returns a copy with macs (per image), peak_gmacs (the one-thread peak of the row's kernels and
    the mode's `peak_kind`; NaN where none was measured, e.g. reference kernels) and floor_us
    (batch × macs / (peak × threads), µs per invoke: the time if every thread ran at the
    one-thread peak)."""
    per_image = {key: int(macs(t).macs.sum()) for key, t in tflites.items()}
    best = {k: best_peaks(peak_table, k) for k in dict.fromkeys(peak_table.kernels)}
    out = bench_table.copy()
    out["macs"] = [per_image[(r.training, r.mode)] for r in out.itertuples()]
    out["peak_gmacs"] = [
        best.get(r.kernels, {}).get(peak_kind(r.mode), np.nan) for r in out.itertuples()
    ]
    out["floor_us"] = (
        out.batch * out.macs / (out.peak_gmacs * 1e3 * out.threads)
    )  # gmacs solved for the time
    return out


def floor_table(
    tflites: dict, bench_table: pd.DataFrame | None = None, peak_table: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per model: MACs per image, the floor MACs / peak (XNNPACK, 1 thread, the best probe's
    peak of the mode's `peak_kind`; `peak_table` None measures them now), and the measured median
    beside it when a bench table (batch 1, xnnpack, 1 thread) is given.

    Returns:
        DataFrame, one row per model: training, mode, macs, peak_kind, peak_gmacs (GMAC/s),
        floor_us (µs); with `bench_table`, measured_us (median per invoke, µs) and
        measured_vs_floor (ratio) where it has that model."""
    best = best_peaks(peaks() if peak_table is None else peak_table, "xnnpack")
    rows = []
    for (training, mode), tflite in tflites.items():
        total = int(macs(tflite).macs.sum())
        kind = peak_kind(mode)
        row = {
            "training": training,
            "mode": mode,
            "macs": total,
            "peak_kind": kind,
            "peak_gmacs": best[kind],
            "floor_us": total / best[kind] / 1e3,
        }
        if bench_table is not None:
            hit = bench_table[
                (bench_table.training == training)
                & (bench_table["mode"] == mode)
                & (bench_table.kernels == "xnnpack")
                & (bench_table.threads == 1)
                & (bench_table.batch == 1)
            ]
            if len(hit):
                row["measured_us"] = float(hit.median_us.iloc[0])
                row["measured_vs_floor"] = row["measured_us"] / row["floor_us"]
        rows.append(row)
    return pd.DataFrame(rows)
