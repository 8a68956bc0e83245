"""The integer engine: an integer-only .tflite run in NumPy with the runtime's own integer rules,
bit for bit, and the arithmetic it is made of.

- `engine`: `IntegerModel`, `run_integer`, `run_float_shortcut` (this package's public names).
- `compare`: `compare`, where two runs differ.
- `prepare`: which models the engine runs, and each kernel's parameters.
- `ops`: the ops without weights, each with its kernels' rules.
- `fixedpoint`, `integer_ops`, `elementwise`, `pooling`, `simd`, `float_ops`: the arithmetic,
  NumPy only.
- `litert`: `run_litert`, every tensor LiteRT computed. It is the only module here that runs the
  interpreter, and this package does not import it: `from qlab.intmath import litert`.
"""

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
