"""Infrastructure: the cache, progress bars, quieting TensorFlow, result tables."""
