"""Data sets, model builders and training: float, QAT, schemes, pruning, clustering."""
