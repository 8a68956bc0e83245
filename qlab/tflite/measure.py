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
    """The fraction of `x` the model classifies as `y` (one batched invoke on LiteRT).

    Returns:
        accuracy in [0, 1].

    Raises:
        ValueError, InvalidModelError: as `qlab.tflite.runtime.Runtime` and its `predict`.
    """
    probs = Runtime(tflite, kernels=kernels).predict(x)
    return float(np.mean(np.argmax(probs, axis=1) == y))


def latency(
    tflite: bytes,
    x: np.ndarray,
    kernels: str = "xnnpack",
    num_threads: int = 1,
    warmup: int = 20,
    runs: int = 200,
) -> dict:
    """Per-invoke time of one sample (batch 1) after `warmup` invokes.

    Only `invoke()` is timed; inputs are quantized beforehand, so every mode pays the same.

    Returns:
        {"latency_us": median, "latency_p10_us", "latency_p90_us": 10th and 90th percentiles,
        all in microseconds, "latency_runs": runs}.

    Raises:
        ValueError: runs below 1 or a negative warmup.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
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
    """Single-sample latency of `tflite` and its ratio to `reference`'s, timed in interleaved rounds
    (file, reference, file, reference, ...) so that drift on a shared machine cancels in the ratio.

    Returns:
        {"latency_us": median over rounds of the file's median invoke time (microseconds),
        "latency_x": median over rounds of the ratio to the reference's, "latency_x_min" and
        "latency_x_max": the ratio's spread over rounds}.

    Raises:
        ValueError: rounds or runs below 1.
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
    """The article's loop: set_tensor, invoke, get_tensor for each image of `x`, one at a time.

    Returns:
        the median over `repeats` loops of the whole loop's time, in milliseconds.

    Raises:
        ValueError: repeats below 1, or inputs `qlab.tflite.runtime.Runtime` refuses.
    """
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
    """The size of a .tflite file.

    Returns:
        bytes: what a device stores and loads.
    """
    return len(tflite)


def measure(tflite: bytes, x_test: np.ndarray, y_test: np.ndarray, runs: int = 200) -> dict:
    """One result row's measured columns for one .tflite on `x_test`, `y_test`.

    Returns:
        {"accuracy" in [0, 1], the `latency` columns in µs, "loop_ms", "size_bytes"}.

    Raises:
        ValueError, InvalidModelError: as `accuracy` and `latency`.
    """
    row = {"accuracy": accuracy(tflite, x_test, y_test)}
    row.update(latency(tflite, x_test, runs=runs))
    row["loop_ms"] = loop_ms(tflite, x_test)
    row["size_bytes"] = size_bytes(tflite)
    return row


def machine() -> dict:
    """What the figures were measured on: the CPU, its instruction-set features, the versions.

    The CPU is read with archspec: its features are the flags the operating system reports
    (/proc/cpuinfo on Linux, x86 and aarch64 alike; sysctl on macOS), spelled as Linux spells them
    ("avx512_vnni", "asimddp"); on Apple silicon, whose sysctl names the chip but no flags, they are
    archspec's table of that chip's features. `qlab.perf.cpu` says what they mean for int8.

    Returns:
        {"cpu": model name (e.g. "Intel(R) Xeon(R) Processor", "Apple M2"), "cpu_uarch":
        archspec's name of the microarchitecture ("icelake", "zen2", "m2", "neoverse_n1"; "" if
        unknown), "architecture": "x86_64", "aarch64", ..., "cpu_flags": every feature flag, a
        sorted tuple of lower-case names (empty if none could be read), "cores": count, "python",
        "tensorflow", "ai_edge_litert", "tensorflow_model_optimization": versions as strings}.
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
    with (
        warnings.catch_warnings()
    ):  # archspec warns, then falls back to a generic CPU, if it cannot read
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
