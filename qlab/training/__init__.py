"""Data sets, model builders and training: float, QAT, schemes, pruning, clustering."""

from qlab import _submodules

__getattr__ = _submodules(__name__)
