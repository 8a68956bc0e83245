"""Numeric paths for a test run: which LiteRT kernels and how many threads qlab uses by default.

`make test-numeric` runs the tests with derived tolerances under QLAB_TEST_KERNELS (xnnpack,
builtin, reference) and QLAB_TEST_THREADS (tests/conftest.py calls `from_environment`); a test whose
other side runs fixed kernels (TensorFlow's debugger, AEQ's validate(): XNNPACK, one thread) sets
them back for its own computation with `litert_defaults`."""

from __future__ import annotations

import contextlib
import os

import pytest

from qlab.analysis import capture, per_layer, recurrent
from qlab.tflite import measure, runtime

KERNEL_DEFAULTS = (
    measure.accuracy,
    per_layer.local,
    per_layer.accumulated,
    per_layer.layer_errors,
    per_layer.qat_vs_deployed,
    recurrent.error_over_time,
)
"""The functions whose `kernels` default is XNNPACK and which pass it on to LiteRT."""


def default_kernels(function, kernels: str) -> str:
    """Set the default of `function`'s `kernels` parameter to `kernels`; returns the one it had."""
    names = function.__code__.co_varnames[: function.__code__.co_argcount]
    defaults = list(function.__defaults__)
    index = names.index("kernels") - (len(names) - len(defaults))
    before, defaults[index] = defaults[index], kernels
    function.__defaults__ = tuple(defaults)
    return before


def set_defaults(kernels: str, threads: int, capture_kernels: str | None = None) -> tuple:
    """LiteRT's defaults everywhere qlab does not choose them itself: the interpreter's, and the
    `kernels` default of every function that passes one on (capture's only when given: its builtin
    default stands for XNNPACK, which keeps no intermediate tensors). Returns what was there."""
    init = runtime.Runtime.__init__
    saved = (
        init.__defaults__[:2],
        [default_kernels(f, kernels) for f in KERNEL_DEFAULTS],
        capture.run.__defaults__[0],
    )
    init.__defaults__ = (kernels, int(threads), *init.__defaults__[2:])
    if capture_kernels is not None:
        default_kernels(capture.run, capture_kernels)
    return saved


@contextlib.contextmanager
def litert_defaults(kernels: str = "xnnpack", threads: int = 1):
    """LiteRT's defaults set to `kernels` and `threads` inside the block, whatever the run's
    path."""
    (old_kernels, old_threads), functions, old_capture = set_defaults(kernels, threads)
    try:
        yield
    finally:
        set_defaults(old_kernels, old_threads, old_capture)
        for function, before in zip(KERNEL_DEFAULTS, functions):
            default_kernels(function, before)


def from_environment() -> None:
    """QLAB_TEST_KERNELS and QLAB_TEST_THREADS as the run's LiteRT defaults (capture's too, for
    reference kernels)."""
    kernels = os.environ.get("QLAB_TEST_KERNELS", "xnnpack")
    threads = os.environ.get("QLAB_TEST_THREADS", "1")
    if kernels not in runtime.KERNELS or not threads.isdigit() or int(threads) < 1:
        raise pytest.UsageError(
            f"QLAB_TEST_KERNELS={kernels!r} QLAB_TEST_THREADS={threads!r}: kernels must be "
            f"one of {', '.join(runtime.KERNELS)} and threads a whole number from 1"
        )
    set_defaults(kernels, int(threads), kernels if kernels == "reference" else None)
