"""The quantization explorer: one layer of a trained model quantized live, with widgets.

`compute` is a plain function of the settings (`Explorer(model, dataset).compute(Settings(...))`,
no widgets: tests check it against qlab's grid and rounding functions); `show(explorer)` wires
ipywidgets controls to it (`widgets`) and shows the bucket histogram (`figures.histogram`), the
rounding vs clipping split and the accuracy, recomputed at every change.
"""

from qlab_workshop.explorer.compute import QUANTIZE, Explorer, OnGrid, Result, Settings
from qlab_workshop.explorer.figures import histogram
from qlab_workshop.explorer.widgets import ExplorerUI, show

__all__ = [
    "QUANTIZE",
    "Explorer",
    "ExplorerUI",
    "OnGrid",
    "Result",
    "Settings",
    "histogram",
    "show",
]
