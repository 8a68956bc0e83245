"""How fast and how big: latency under each kernel choice (`bench`), the CPU it ran on and what its
instruction set means for int8 (`cpu`), where each byte of a file goes (`sizes`), and the work per
inference, the peak MAC rate per data type and the latency floor they imply (`work`)."""

from qlab import _submodules

__getattr__ = _submodules(__name__)
