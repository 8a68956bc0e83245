"""Figures of values counted on a quantization grid: weights and layer outputs over the buckets of
the grid they sit on, with a zoom where single values and levels show. Each returns a matplotlib
Figure; no global style changes.

The figures take a `qlab.analysis.capture.Pair` (a deployed model and its float reference) or what
`qlab.analysis.buckets` reads from one: `layer_weights` (weights, grid), `layer_activations`
(float outputs, deployed outputs, grid), and the layer column of `weight_table` and
`activation_table`. Colours (`qlab.plots.figure`): blue is the float model, orange the deployed model, red the
range ends and clipping.
"""

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
    """One bar per level q, counting the integers `q` (drawn as one filled step line: 255 bars as patches
    take seconds to draw)."""
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
    """Weights over their int8 buckets: one bar per level (the range ends dashed), and a zoom on a
    few buckets where each dot is one weight between its bucket's edges. A per-axis grid without
    `channel`: every channel on its own grid, counted by level.

    With a per-tensor grid, or a per-axis grid and `channel`, two panels. Left: a histogram of the
    weights with one bin per bucket (x in real values, a second x axis on top in levels q), a rug
    of black ticks at zero height so that lone weights show, and the grid's range ends as red
    dashed lines; the title counts the levels used. Right: a zoom on the 8 buckets around the
    busiest nonzero level, bucket edges dotted gray; each weight is a dot (spread up the y axis
    at random, seed 0, to keep them apart) and each level a black triangle on the x axis.

    With a per-axis grid and no `channel`, one panel: weights counted per level q, each channel
    quantized with its own scale; the title gives the levels the whole tensor uses.

    Args:
        w: the weights as floats, in the file's layout (e.g. (out, kh, kw, in) for a conv), as
            the first value of `qlab.analysis.buckets.layer_weights`.
        g: the `qlab.analysis.grid.Grid` the weights sit on: `layer_weights`' second value, or
            one from `qlab.analysis.grid.weights`.
        channel: with a per-axis grid, the output channel to show on that channel's own grid;
            None shows every channel by level. Ignored for a per-tensor grid.
        title: the (left) panel's title; by default it counts the levels used.

    Returns:
        The matplotlib Figure: 2 panels side by side, or 1 for a per-axis grid without `channel`.

    Raises:
        ValueError: `w` is empty or not finite, does not have one slice per channel of a
            per-axis grid, or `channel` is not one of that grid's channels.
    """
    if g.per_axis and channel is None:
        fig, (ax,) = figure(1, width=7, height=3.0)
        _by_level(ax, g.quantize(w), g)
        ax.set(
            xlabel="level q (each channel on its own scale)",
            ylabel="weights",
            title=title
            or f"all {g.scale.size} channels: {buckets.occupancy(w, g)['used']} of {g.levels} levels used",
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
    """Every quantized layer's weights counted by level, each channel on its own grid, with the
    levels used in the title. `per_tensor=True` refits one symmetric grid per tensor instead.

    One panel per layer with quantized weights, in the order of `buckets.weight_table`: one bar
    per level q (x) counting the weights quantized to it (y, linear). Each title gives the levels
    the whole tensor uses out of the grid's levels and, on a per-channel grid, the median number
    one channel uses. The figure's title says which grids the weights are on.

    Args:
        pair: a `qlab.analysis.capture.Pair` (`capture.pair(deployed, float reference)`) whose
            deployed model has int8 weights; its layers come from the layer column of
            `qlab.analysis.buckets.weight_table`, their weights and grids from `layer_weights`.
        per_tensor: False draws the deployed grids (per output channel); True refits one
            symmetric grid per tensor with the same bits (`qlab.analysis.grid.weights`,
            axis=None), which leaves most channels few levels.

    Returns:
        The matplotlib Figure: one panel per layer with quantized weights, in one row.

    Raises:
        ValueError: from `buckets.weight_table`: no layer of the model has quantized weights
            (a float32 or float16 model).
    """
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
    """A layer's outputs, float model against deployed model, over the activation grid: counts per
    bucket over the whole range (log), and a zoom where the float outputs spread out while the
    deployed ones stand on the levels.

    Left panel: the float outputs counted per bucket (blue, filled, one bin per bucket) and the
    deployed outputs counted per level (orange dots), log y, the grid's range ends as red dashed
    lines. Right panel: a zoom on the 8 buckets around the deployed outputs' busiest nonzero
    level, bucket edges dotted gray: the float outputs in 20 fine bins per bucket (counts × 20,
    so that both read as values per bucket) and the deployed counts as orange lines on the
    levels, linear y.

    Args:
        values: the layer's outputs in the float reference, any shape (flattened).
        deployed: the same outputs in the deployed model, dequantized, any shape (flattened).
        g: the layer's (per-tensor) output grid. The three are what
            `qlab.analysis.buckets.layer_activations` returns.
        title: the left panel's title; by default "over the whole grid".

    Returns:
        The matplotlib Figure: 2 panels side by side.
    """
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
    """Every quantized layer output for inputs `x`: float reference (bars) and deployed model (dots)
    counted per bucket of the deployed grid, log scale, range ends dashed.

    One panel per layer, three to a row: the float reference's outputs counted per bucket (blue,
    filled) and the deployed model's per level (orange dots) against the output value, log y,
    the grid's range ends as red dashed lines. Each title gives the grid's scale and zero point.

    Args:
        pair: a `qlab.analysis.capture.Pair` of a full-integer model and its float reference.
        x: the input images to run both on, e.g. `qlab.training.data.load().x_test`.
        layers: names of the layers to show; by default the layer column of
            `qlab.analysis.buckets.activation_table` (every quantized output but RESHAPE's).

    Returns:
        The matplotlib Figure: one panel per layer, three to a row.

    Raises:
        ValueError: from `qlab.analysis.buckets`: `x` is empty, or a layer's output is not
            quantized (a dynamic_range or float16 model).
        KeyError: a name in `layers` that the model does not have.
    """
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
