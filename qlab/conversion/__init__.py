"""Converting: the mode table, the TFLite converter, its debugger, ai-edge-quantizer."""

from qlab import _submodules

__getattr__ = _submodules(__name__)
