"""LiteRT's own tensors, beside the engine's: every tensor one invoke computed, read back.

This is the one module of `qlab.intmath` that runs the LiteRT interpreter; the engine and its
arithmetic never do.
"""

from __future__ import annotations

import warnings

from qlab.intmath.engine import IntegerModel, IntegerRun
from qlab.tflite.runtime import Runtime


def run_litert(tflite: bytes, q_input, kernels: str = "builtin") -> IntegerRun:
    """Every activation tensor LiteRT computed for `q_input`, read back after one invoke.

    With intermediates kept, LiteRT hands each op to XNNPACK as its own partition, so every
    tensor is written; the output is the same as with the whole graph in one partition.

    Args:
        tflite: an integer-only model's bytes.
        q_input: the input tensor's integers (its dtype), a batch or one sample.
        kernels: the LiteRT kernel choice: "xnnpack", "builtin" or "reference".

    Returns:
        `IntegerRun` labelled "LiteRT <kernels>": the output, and a copy of the input and of
        every op's output by tensor index, each of its tensor's dtype, batch axis first.

    Raises:
        ValueError: unknown kernels, or an input of another dtype or shape, or an empty batch.
        IntegerModelError: a model the engine cannot read as integer-only (it lists the ops).
        InvalidModelError: bytes that are not a .tflite, or that LiteRT cannot load.
    """
    model = IntegerModel(tflite)
    q = model.check_input(q_input)
    with warnings.catch_warnings():  # keeping intermediates is the point here, not a debugging slip
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        rt = Runtime(tflite, kernels=kernels, keep_intermediates=True)
    rt.invoke_raw(q)
    indices = [model.input.index] + [s.output.index for s in model.steps]
    tensors = {i: rt.interpreter.get_tensor(i).copy() for i in indices}
    return IntegerRun(tensors[model.output.index], tensors, f"LiteRT {kernels}")
