"""Reading and running `.tflite` files: the flatbuffer, LiteRT, op naming, measuring."""

from qlab import _submodules

__getattr__ = _submodules(__name__)
