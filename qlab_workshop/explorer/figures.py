"""The explorer's figure: each quantized tensor of the layer counted per bucket of its grid.

A plain matplotlib Figure (no pyplot state) with fixed margins, so that a redraw stays well under a
second; colours as in `qlab.plots.histograms` (`qlab.plots.figure`): blue values, red clipped ones.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from qlab.plots.figure import CLIP, FLOAT


def _title(settings, part) -> str:
    g = part.grid
    where = "per-channel" if g.per_axis else f"range [{g.low[0]:.3g}, {g.high[0]:.3g}]"
    return (
        f"{settings.layer} {part.name}: {part.used} of {g.levels} levels used\n{where}, scale "
        + (f"{g.scale[0]:.3g}" if not g.per_axis else f"{g.scale.min():.3g}..{g.scale.max():.3g}")
    )


def histogram(result) -> Figure:
    """How many values land in each bucket (level) of each grid: one panel per quantized tensor
    of the layer (its kernels, then its activations), bars per level q (each channel of a
    per-channel grid on its own scale), the clipped values stacked in red on the end levels; y
    linear for weights, log for activations.

    Args:
        result: a `qlab_workshop.explorer.Result`; a panel reads one `OnGrid`'s counts, clipped.

    Returns:
        The matplotlib Figure: one panel per tensor, side by side; each title gives the levels
        used out of the grid's, the range (per-tensor) and the scale (or the scales' span).
    """
    parts = list(result.weights) + ([result.activations] if result.activations is not None else [])
    inches = 3.7 * len(parts)
    fig = Figure(
        figsize=(inches, 2.7)
    )  # fixed margins, not qlab.plots' constrained layout: it took most of a redraw
    fig.subplots_adjust(
        left=0.65 / inches, right=1 - 0.1 / inches, bottom=0.17, top=0.83, wspace=0.4
    )
    axes = fig.subplots(1, len(parts), squeeze=False).ravel()
    for ax, part in zip(axes, parts):
        g = part.grid
        edges = np.arange(g.qmin, g.qmax + 2) - 0.5  # one bucket per level, centred on it
        ax.stairs(
            part.counts, edges, fill=True, color=FLOAT, label="values"
        )  # one artist: fast to redraw
        ends = np.flatnonzero(part.clipped)
        ax.bar(
            g.qmin + ends,
            part.clipped[ends],
            width=1.0,
            bottom=part.counts[ends] - part.clipped[ends],
            color=CLIP,
            label="clipped",
        )
        if part.name == "activations":  # a ReLU's zeros make one level tower over the rest
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())  # labels on the decades only
        ax.set_xlim(g.qmin - 1, g.qmax + 1)
        ax.set(xlabel="level q", ylabel="values per bucket")
        ax.set_title(_title(result.settings, part), fontsize=8)
    axes[0].legend(fontsize=7, loc="upper left")
    return fig


def png(fig: Figure, dpi: int = 72) -> bytes:
    """Returns `fig` rendered as PNG bytes at `dpi` (what the explorer's Image widget shows)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
