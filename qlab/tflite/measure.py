"""Accuracy, latency and size of a .tflite, measured by running it in LiteRT."""

from __future__ import annotations

import functools
import os
import platform
import time
import warnings
from importlib.metadata import version

import archspec.cpu
import numpy as np

from qlab.tflite.runtime import Runtime


def accuracy(tflite: bytes, x: np.ndarray, y: np.ndarray, kernels: str = "xnnpack") -> float:
    """Returns the fraction of `x` whose highest output is its integer label `y`, in [0, 1] (one
    batched LiteRT invoke).

    Raises ValueError for labels that are not one whole number per sample within the model's
    outputs, for a model with one
    output unit (a binary or regression head has no argmax) or inputs it does not take;
    TypeError or InvalidModelError for anything but the bytes of a .tflite.
    """
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"accuracy takes one integer label per sample, shape ({len(x)},); got {y.dtype} "
            f"labels of shape {y.shape} (one-hot labels: pass labels.argmax(axis=1))"
        )
    probs = Runtime(tflite, kernels=kernels).predict(x)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(
            f"accuracy scores one output unit per class; this model outputs shape "
            f"{probs.shape[1:]} per sample (a binary or regression head), which it does not score"
        )
    if len(y) and (y.min() < 0 or y.max() >= probs.shape[1]):
        raise ValueError(
            f"labels run from {y.min()} to {y.max()}, and the model has {probs.shape[1]} "
            f"outputs, one per class 0..{probs.shape[1] - 1}: pass labels in that range"
        )
    return float(np.mean(np.argmax(probs, axis=1) == y))


def latency(
    tflite: bytes,
    x: np.ndarray,
    kernels: str = "xnnpack",
    num_threads: int = 1,
    warmup: int = 20,
    runs: int = 200,
) -> dict:
    """Times `invoke()` alone on one sample (batch 1) after `warmup` invokes.

    Returns {"latency_us": median, "latency_p10_us", "latency_p90_us" (µs), "latency_runs"}.
    Raises ValueError for runs below 1 or a negative warmup.
    """
    whole = all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in (runs, warmup)
    )
    if not whole or runs < 1 or warmup < 0:
        raise ValueError(
            f"runs must be a whole number >= 1 and warmup one >= 0, got runs={runs!r}, "
            f"warmup={warmup!r}"
        )
    if len(x) == 0:
        raise ValueError("latency needs at least one sample to time, got an empty array")
    rt = Runtime(tflite, kernels=kernels, num_threads=num_threads)
    samples = rt.quantize_input(np.asarray(x[: max(1, min(len(x), runs))], dtype=np.float32))
    interp, index = rt.interpreter, rt.input["index"]
    times = np.empty(runs)
    for i in range(warmup + runs):
        rt.reset()  # a stateful model (an LSTM) starts every sample from its initial state
        interp.set_tensor(index, samples[i % len(samples)][np.newaxis])
        start = time.perf_counter_ns()
        interp.invoke()
        if i >= warmup:
            times[i - warmup] = (time.perf_counter_ns() - start) / 1e3
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    return {
        "latency_us": float(median),
        "latency_p10_us": float(p10),
        "latency_p90_us": float(p90),
        "latency_runs": runs,
    }


def latency_against(
    tflite: bytes, reference: bytes, x: np.ndarray, rounds: int = 3, runs: int = 50
) -> dict:
    """Single-sample latency and its ratio to `reference`'s, timed in interleaved rounds so that
    drift on a shared machine cancels in the ratio.

    Returns {"latency_us", "latency_x", "latency_x_min", "latency_x_max"}: medians (µs, ratio)
    and the ratio's spread over rounds. Raises ValueError for rounds or runs below 1.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    times, ratios = [], []
    for _ in range(rounds):
        t = latency(tflite, x, runs=runs)["latency_us"]
        ratios.append(t / latency(reference, x, runs=runs)["latency_us"])
        times.append(t)
    return {
        "latency_us": float(np.median(times)),
        "latency_x": float(np.median(ratios)),
        "latency_x_min": float(min(ratios)),
        "latency_x_max": float(max(ratios)),
    }


def loop_ms(
    tflite: bytes, x: np.ndarray, kernels: str = "xnnpack", num_threads: int = 1, repeats: int = 3
) -> float:
    """Returns the median over `repeats` of the article's loop (set_tensor, invoke, get_tensor per
    image of `x`), in ms. Raises ValueError for repeats below 1 or inputs `Runtime` refuses."""
    if repeats < 1:
        raise ValueError(f"repeats must be 1 or more, got {repeats}: nothing would be timed")
    rt = Runtime(tflite, kernels=kernels, num_threads=num_threads)
    samples = rt.quantize_input(np.asarray(x, dtype=np.float32))
    interp, inp, out = rt.interpreter, rt.input["index"], rt.output["index"]
    totals = []
    for _ in range(repeats):
        start = time.perf_counter()
        for sample in samples:
            if rt.stateful:  # the article's loop, plus the reset a stateful model needs per sample
                interp.reset_all_variables()
            interp.set_tensor(inp, sample[np.newaxis])
            interp.invoke()
            interp.get_tensor(out)
        totals.append((time.perf_counter() - start) * 1e3)
    return float(np.median(totals))


def size_bytes(tflite: bytes) -> int:
    """Returns the file's size in bytes: what a device stores and loads."""
    return len(tflite)


def measure(tflite: bytes, x_test: np.ndarray, y_test: np.ndarray, runs: int = 200) -> dict:
    """Returns one result row's measured columns: accuracy, the `latency` columns, loop_ms,
    size_bytes. Raises ValueError, InvalidModelError as `accuracy` and `latency`."""
    row = {"accuracy": accuracy(tflite, x_test, y_test)}
    row.update(latency(tflite, x_test, runs=runs))
    row["loop_ms"] = loop_ms(tflite, x_test)
    row["size_bytes"] = size_bytes(tflite)
    return row


def machine() -> dict:
    """What the figures were measured on. The CPU flags are those the OS reports, read by archspec
    and spelled as Linux spells them ("avx512_vnni"); on Apple silicon, archspec's table.

    Returns {"cpu": model name, "cpu_uarch": archspec's microarchitecture ("" if unknown),
    "architecture", "cpu_flags": sorted tuple of lower-case flags, "cores", and the versions of
    "python", "tensorflow", "ai_edge_litert", "tensorflow_model_optimization"}.
    """
    return {
        **_cpu(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "ai_edge_litert": version("ai-edge-litert"),
        "tensorflow_model_optimization": version("tensorflow-model-optimization"),
    }


@functools.lru_cache(maxsize=1)
def _cpu() -> dict:
    """The CPU's name, microarchitecture, architecture and flags, read once per process."""
    name, uarch, flags = "", "", ()
    try:
        with open("/proc/cpuinfo") as f:  # Linux x86 names its model here (aarch64 does not)
            name = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    # archspec warns, then falls back to a generic CPU, if it cannot read
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            host = archspec.cpu.host()
            detected = set(archspec.cpu.detect.detected_info().features)
            uarch = "" if host.vendor == "generic" else host.name
            flags = tuple(sorted(detected or host.features))  # Apple silicon: the chip's features
            name = (
                name
                or archspec.cpu.brand_string()
                or (f"{host.vendor} {host.name}" if uarch else "")
            )
        except Exception:  # noqa: BLE001  (an unreadable CPU must not stop a measurement)
            pass
    return {
        "cpu": name or platform.processor() or platform.machine(),
        "cpu_uarch": uarch,
        "architecture": platform.machine(),
        "cpu_flags": flags,
    }
