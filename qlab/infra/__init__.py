"""Infrastructure: the cache, progress bars, quieting TensorFlow, result tables."""

from qlab import _submodules

__getattr__ = _submodules(__name__)
