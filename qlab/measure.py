"""Accuracy, latency and size of a .tflite, measured by running it in LiteRT."""

from __future__ import annotations

import time

import numpy as np

from qlab.runtime import Runtime


def accuracy(tflite: bytes, x: np.ndarray, y: np.ndarray, kernels: str = "xnnpack") -> float:
    """Fraction of `x` the model classifies as `y` (one batched invoke)."""
    probs = Runtime(tflite, kernels=kernels).predict(x)
    return float(np.mean(np.argmax(probs, axis=1) == y))


def latency(tflite: bytes, x: np.ndarray, kernels: str = "xnnpack", num_threads: int = 1,
            warmup: int = 20, runs: int = 200) -> dict:
    """Per-invoke time of one sample (batch 1) after `warmup` invokes: median, p10, p90 in µs.

    Only `invoke()` is timed; inputs are quantized beforehand, so every mode pays the same.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    rt = Runtime(tflite, kernels=kernels, num_threads=num_threads)
    samples = rt.quantize_input(np.asarray(x[:max(1, min(len(x), runs))], dtype=np.float32))
    interp, index = rt.interpreter, rt.input["index"]
    times = np.empty(runs)
    for i in range(warmup + runs):
        interp.set_tensor(index, samples[i % len(samples)][np.newaxis])
        start = time.perf_counter_ns()
        interp.invoke()
        if i >= warmup:
            times[i - warmup] = (time.perf_counter_ns() - start) / 1e3
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    return {"latency_us": float(median), "latency_p10_us": float(p10),
            "latency_p90_us": float(p90), "latency_runs": runs}


def loop_ms(tflite: bytes, x: np.ndarray, kernels: str = "xnnpack", num_threads: int = 1,
            repeats: int = 3) -> float:
    """The article's loop: set_tensor, invoke, get_tensor for each test image; median total ms."""
    rt = Runtime(tflite, kernels=kernels, num_threads=num_threads)
    samples = rt.quantize_input(np.asarray(x, dtype=np.float32))
    interp, inp, out = rt.interpreter, rt.input["index"], rt.output["index"]
    totals = []
    for _ in range(repeats):
        start = time.perf_counter()
        for sample in samples:
            interp.set_tensor(inp, sample[np.newaxis])
            interp.invoke()
            interp.get_tensor(out)
        totals.append((time.perf_counter() - start) * 1e3)
    return float(np.median(totals))


def size_bytes(tflite: bytes) -> int:
    return len(tflite)


def measure(tflite: bytes, x_test: np.ndarray, y_test: np.ndarray, runs: int = 200) -> dict:
    """One result row's measured columns for one .tflite."""
    row = {"accuracy": accuracy(tflite, x_test, y_test)}
    row.update(latency(tflite, x_test, runs=runs))
    row["loop_ms"] = loop_ms(tflite, x_test)
    row["size_bytes"] = size_bytes(tflite)
    return row


def machine() -> dict:
    """What the figures were measured on: CPU, cores, and the stack's versions."""
    import os
    import platform

    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "tensorflow": tf.__version__, "ai_edge_litert": version("ai-edge-litert"),
        "tensorflow_model_optimization": version("tensorflow-model-optimization"),
    }
