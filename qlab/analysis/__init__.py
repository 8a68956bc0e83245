"""Looking inside a quantized model: grids, captured tensors, buckets, per-layer error, variants.

- `grid`: what a quantization grid is, and which one the converter picks for a tensor.
- `converter_grids`: every grid of a converted model, predicted from the float model.
- `capture`: run models keeping every tensor; pair a deployed model's ops with the float ones.
- `buckets`: where values land on a grid; rounding vs clipping.
- `per_layer`: which layer adds how much error (local and accumulated views).
- `variants`: what to change: layers kept in float, per-tensor weights.

Each loads on first use (`qlab.analysis.buckets` after `from qlab import analysis`).
"""

import importlib

SUBMODULES = (
    "grid",
    "converter_grids",
    "capture",
    "buckets",
    "per_layer",
    "variants",
    "rounding",
    "fake_quant",
    "calibration",
    "ranges",
    "precision",
    "recurrent",
    "weights",
)


def __getattr__(name: str):
    if name not in SUBMODULES:
        raise AttributeError(f"module 'qlab.analysis' has no attribute {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def __dir__() -> list[str]:
    return sorted(SUBMODULES)
