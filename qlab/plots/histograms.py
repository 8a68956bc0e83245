"""Figures of values counted on a quantization grid: weights and layer outputs over the buckets of
the grid they sit on, with a zoom where single values and levels show. Each returns a matplotlib
Figure; no global style changes.

The figures take a `qlab.analysis.capture.Pair` (a deployed model and its float reference) or what
`qlab.analysis.buckets` reads from one: `layer_weights` (weights, grid), `layer_activations`
(float outputs, deployed outputs, grid). Colours (`qlab.plots.figure`): blue is the float model,
orange the deployed model, red the range ends and clipping."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from qlab.analysis import buckets, grid
from qlab.plots.figure import DEPLOYED, FLOAT, figure, range_lines, zoom_buckets


def _levels_axis(ax, g: grid.Grid) -> None:
    """A second x axis on top, in levels q, for an axis in real values."""
    s, z = g.scale[0], g.zero_point[0]
    top = ax.secondary_xaxis("top", functions=(lambda v: v / s + z, lambda q: (q - z) * s))
    top.set_xlabel("level q", fontsize=8)


def _by_level(ax, q: np.ndarray, g: grid.Grid) -> None:
    """One bar per level q counting the integers `q` (one filled step line: 255 bar patches take
    seconds to draw)."""
    counts = np.bincount(np.ravel(q) - g.qmin, minlength=g.levels)
    ax.stairs(counts, np.arange(g.qmin, g.qmax + 2) - 0.5, fill=True)


def _over_buckets(
    ax, values: np.ndarray, deployed: np.ndarray, g: grid.Grid, ms: float = 3
) -> np.ndarray:
    """Float values counted per bucket (filled) and deployed values per level (dots), log scale;
    returns the deployed counts."""
    ax.hist(
        np.ravel(values),
        bins=g.edges(),
        histtype="stepfilled",
        color=FLOAT,
        alpha=0.5,
        label="float model",
    )
    counts = np.bincount(g.quantize(deployed).ravel() - g.qmin, minlength=g.levels)
    ax.plot(
        g.centers()[counts > 0],
        counts[counts > 0],
        ".",
        color=DEPLOYED,
        ms=ms,
        label="deployed model",
    )
    range_lines(ax, g)
    ax.set_yscale("log")
    return counts


def weight_histogram(w, g: grid.Grid, channel: int | None = None, title: str = "") -> Figure:
    """Weights (in the file's layout, as `qlab.analysis.buckets.layer_weights` gives them) over
    their buckets of grid `g`.

    With a per-tensor grid, or a per-axis grid and `channel`: left, one bar per bucket (a second x
    axis in levels q), a rug of the weights so lone ones show, and the range ends dashed; right, a
    zoom on the 8 buckets around the busiest nonzero level, each weight a dot (spread up the y axis
    at random, seed 0) and each level a triangle. With a per-axis grid and no `channel`: the
    weights counted per level, each channel quantized on its own scale.

    Returns:
        The Figure: 2 panels side by side, or 1 for a per-axis grid without `channel`.

    Raises:
        ValueError: `w` is empty or not finite, does not have one slice per channel of a
            per-axis grid, or `channel` is not one of that grid's channels."""
    if g.per_axis and channel is None:
        fig, (ax,) = figure(1, width=7, height=3.0)
        _by_level(ax, g.quantize(w), g)
        ax.set(
            xlabel="level q (each channel on its own scale)",
            ylabel="weights",
            title=title
            or f"all {g.scale.size} channels: {buckets.occupancy(w, g)['used']} of {g.levels} "
            "levels used",
        )
        return fig
    x, g = buckets.one_channel(w, g, channel)
    fig, (ax, zoom) = figure(2, width=4.2, height=3.2)
    ax.hist(x.ravel(), bins=g.edges())
    ax.plot(
        x.ravel(), np.zeros(x.size), "|", color="black", alpha=0.5, ms=10
    )  # a rug: lone weights show
    range_lines(ax, g)
    _levels_axis(ax, g)
    used = buckets.used_levels(x, g)[0]
    ax.set(
        xlabel="weight",
        ylabel="weights per bucket",
        title=title or f"{x.size} weights use {used} of {g.levels} levels",
    )
    edges = zoom_buckets(zoom, g, x)
    zoom.plot(x.ravel(), np.random.default_rng(0).uniform(0.1, 0.9, x.size), "o", ms=3, alpha=0.6)
    zoom.plot(
        (edges[:-1] + edges[1:]) / 2,
        np.zeros(len(edges) - 1),
        "k^",
        ms=7,
        label="level (stored value)",
    )
    zoom.set(
        xlabel="weight",
        yticks=[],
        ylim=(-0.1, 1),
        title=f"zoom: {len(edges) - 1} buckets, edges dotted",
    )
    zoom.legend(fontsize=7, loc="upper right")
    return fig


def weight_histograms(pair, per_tensor: bool = False) -> Figure:
    """Every quantized layer's weights of `pair` counted by level, titled with the levels the
    tensor uses (and the median channel's, per channel). `per_tensor=True` refits one symmetric grid
    per tensor with the same bits instead of the deployed per-channel grids, which leaves most
    channels few levels.

    Returns:
        The Figure: one panel per layer with quantized weights, in one row.

    Raises:
        ValueError: from `buckets.weight_table`: no layer of the model has quantized weights
            (a float32 or float16 model)."""
    table = buckets.weight_table(pair)
    fig, axes = figure(len(table), width=3.0, height=2.8)
    for ax, name in zip(axes, table.layer):
        w, g = buckets.layer_weights(pair, name)
        g = grid.weights(w, g.bits, axis=None) if per_tensor else g
        occ = buckets.occupancy(w, g)
        _by_level(ax, g.quantize(w), g)
        each = f"\nmedian channel {occ['used_median']:g}" if g.per_axis else ""
        ax.set(xlabel="level q", title=f"{name}: {occ['used']}/{g.levels} levels{each}")
        ax.title.set_fontsize(9)
    axes[0].set_ylabel("weights")
    fig.suptitle(
        "weights on "
        + ("one grid per tensor" if per_tensor else "the deployed grids (per channel)")
    )
    return fig


def activation_histogram(values, deployed, g: grid.Grid, title: str = "") -> Figure:
    """A layer's outputs, float model against deployed model (dequantized), over the activation
    grid, as `qlab.analysis.buckets.layer_activations` returns the three. Left: float outputs per
    bucket (filled) and deployed outputs per level (dots), log y, range ends dashed. Right: a zoom
    on the 8 buckets around the deployed outputs' busiest nonzero level, the float outputs in 20
    fine bins per bucket (counts × 20) and the deployed counts as lines on the levels.

    Returns the Figure: 2 panels side by side."""
    values, deployed = (
        np.asarray(values, np.float64).ravel(),
        np.asarray(deployed, np.float64).ravel(),
    )
    fig, (ax, zoom) = figure(2, width=4.4, height=3.2)
    counts = _over_buckets(ax, values, deployed, g)
    ax.set(xlabel="activation", ylabel="values per bucket", title=title or "over the whole grid")
    ax.legend(fontsize=7)
    edges = zoom_buckets(zoom, g, deployed)
    sub = 20  # fine bins per bucket, their counts × sub so both curves read as values per bucket
    fine = np.linspace(edges[0], edges[-1], sub * (len(edges) - 1) + 1)
    hist, _ = np.histogram(values, fine)
    zoom.stairs(hist * sub, fine, fill=True, color=FLOAT, alpha=0.5, label="float model")
    at = (g.centers() > edges[0]) & (g.centers() < edges[-1])
    zoom.vlines(g.centers()[at], 0, counts[at], color=DEPLOYED, lw=2.5, label="deployed model")
    zoom.set(xlabel="activation", title="zoom: float spreads, deployed stands on levels")
    zoom.legend(fontsize=7)
    return fig


def activation_histograms(pair, x, layers=None) -> Figure:
    """Every quantized layer output of `pair` for inputs `x`: float reference (filled) and deployed
    model (dots) counted per bucket of the deployed grid, log y, range ends dashed, the grid's scale
    and zero point in the title. `layers` defaults to every quantized output but RESHAPE's.

    Returns:
        The Figure: one panel per layer, three to a row.

    Raises:
        ValueError: from `qlab.analysis.buckets`: `x` is empty, or a layer's output is not
            quantized (a dynamic_range or float16 model).
        KeyError: a name in `layers` that the model does not have."""
    names = layers or list(buckets.activation_table(pair, x[:1]).layer)
    fig, axes = figure(len(names), ncols=min(3, len(names)), width=3.6, height=2.7)
    for ax, name in zip(axes, names):
        values, deployed, g = buckets.layer_activations(pair, name, x)
        _over_buckets(ax, values, deployed, g, ms=2)
        ax.set(
            xlabel=f"{name} output",
            title=f"{name}: scale {g.scale[0]:.3g}, zero point {g.zero_point[0]}",
        )
        ax.title.set_fontsize(9)
    axes[0].legend(fontsize=7)
    return fig
