"""The integer engine: an integer-only .tflite run in NumPy with the runtime's own integer rules,
bit for bit (`engine`, `compare`), the models it runs (`prepare`) and the arithmetic, NumPy only
(`ops`, `fixedpoint`, `integer_ops`, `elementwise`, `pooling`, `simd`, `float_ops`).
`litert.run_litert` runs the interpreter: it loads on first use of `qlab.intmath.litert`, so
importing the engine loads no interpreter."""

import importlib

from qlab.intmath.compare import compare
from qlab.intmath.engine import KERNELS, IntegerModel, IntegerRun, run_float_shortcut, run_integer
from qlab.intmath.prepare import IntegerModelError, Step

__all__ = [
    "KERNELS",
    "IntegerModel",
    "IntegerModelError",
    "IntegerRun",
    "Step",
    "compare",
    "run_float_shortcut",
    "run_integer",
]


def __getattr__(name: str):
    if name != "litert":
        raise AttributeError(f"module 'qlab.intmath' has no attribute {name!r}")
    return importlib.import_module(f"{__name__}.litert")


def __dir__() -> list[str]:
    return sorted([*__all__, "litert"])
