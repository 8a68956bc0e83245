"""LiteRT's own tensors, beside the engine's: every tensor one invoke computed, read back. The
one module of `qlab.intmath` that runs the interpreter."""

from __future__ import annotations

import warnings

from qlab.intmath.engine import IntegerModel, IntegerRun
from qlab.tflite.runtime import Runtime


def run_litert(tflite: bytes, q_input, kernels: str = "builtin") -> IntegerRun:
    """Every activation tensor LiteRT (`kernels`) computed for `q_input`, read after one invoke.

    With intermediates kept, LiteRT hands each op to XNNPACK as its own partition, so every tensor
    is written; the output is the same as with one partition.

    Returns an `IntegerRun` labelled "LiteRT <kernels>", tensors of their own dtypes.

    Raises:
        ValueError: unknown kernels, an input of another dtype or shape, or an empty batch.
        IntegerModelError: a model the engine cannot read as integer-only.
        InvalidModelError: bytes that are not a .tflite, or that LiteRT cannot load."""
    model = IntegerModel(tflite)
    q = model.check_input(q_input)
    with warnings.catch_warnings():  # keeping intermediates is the point here, not a debugging slip
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        rt = Runtime(tflite, kernels=kernels, keep_intermediates=True)
    rt.invoke_raw(q)
    indices = [model.input.index] + [s.output.index for s in model.steps]
    tensors = {i: rt.interpreter.get_tensor(i).copy() for i in indices}
    return IntegerRun(tensors[model.output.index], tensors, f"LiteRT {kernels}")
