"""The figure helper every plot module uses, and the drawing the grid figures share.

No global style changes: each figure is a plain matplotlib `Figure` (not pyplot state), shown by
Jupyter when a cell returns it. Nothing here reads a table: the figure functions of the other
modules read the tables and fill these axes."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

FLOAT, DEPLOYED, CLIP = "tab:blue", "tab:orange", "tab:red"
"""The colours of the grid figures: the float model, the deployed model, range ends and clipping."""


def figure(
    panels: int = 1, ncols: int | None = None, width: float = 7.0, height: float = 3.2
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure of `panels` axes, `ncols` to a row (default: all in one row),
    each panel `width` × `height` inches; axes beyond `panels` in the last row are hidden.

    Returns (the Figure, a 1-D array of its `panels` Axes in reading order)."""
    ncols = ncols or panels
    nrows = -(-panels // ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


# -- drawing on a quantization grid (histograms and errors share these) ------------------------
def range_lines(ax, g) -> None:
    """Draw dashed red lines at the range ends of grid `g` (its first channel's if per-axis)."""
    for end in (g.low[0], g.high[0]):
        ax.axvline(
            end, color=CLIP, ls="--", lw=0.9, zorder=0.5
        )  # behind the data: the end levels show


def zoom_buckets(ax, g, x: np.ndarray, n: int = 8) -> np.ndarray:
    """Limit `ax` to `n` buckets of grid `g` around the busiest nonzero level of `x`; draw their
    edges (dotted gray). Returns the n + 1 bucket edges shown, float64, in real units."""
    q = g.quantize(x).ravel()
    busy = q[q != g.zero_point[0]] if np.any(q != g.zero_point[0]) else q
    centre = int(
        np.clip(np.bincount(busy - g.qmin).argmax() + g.qmin, g.qmin + n // 2, g.qmax - n // 2)
    )
    edges = g.edges()[centre - n // 2 - g.qmin : centre + n // 2 + 1 - g.qmin]
    for e in edges:
        ax.axvline(e, color="gray", ls=":", lw=0.8)
    ax.set_xlim(edges[0], edges[-1])
    return edges
