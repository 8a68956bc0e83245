"""The integer engine: an integer-only .tflite run in NumPy with the runtime's own integer rules,
bit for bit, and the arithmetic it is made of.

- `engine`: `IntegerModel`, `run_integer`, `run_float_shortcut` (this package's public names).
- `compare`: `run_litert` (every tensor LiteRT computed) and `compare` (where two runs differ).
- `prepare`: which models the engine runs, and each kernel's parameters.
- `fixedpoint`, `integer_ops`, `float_ops`: the arithmetic, NumPy only, no runtime.
"""

from qlab.intmath.compare import compare, run_litert
from qlab.intmath.engine import KERNELS, IntegerModel, IntegerRun, run_float_shortcut, run_integer
from qlab.intmath.prepare import IntegerModelError, Step

__all__ = ["KERNELS", "IntegerModel", "IntegerModelError", "IntegerRun", "Step", "compare",
           "run_float_shortcut", "run_integer", "run_litert"]
