"""Figures of values on a quantization grid: histograms over the buckets, bucket errors, rounding vs
clipping, the clip-range sweep, and the range before vs after a ReLU. Each returns a matplotlib
Figure; no global style changes. Tables come from `qlab.buckets`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab import buckets, grid

FLOAT, DEPLOYED, CLIP = "tab:blue", "tab:orange", "tab:red"


def _figure(panels: int = 1, ncols: int | None = None, width: float = 3.6, height: float = 3.0):
    """A figure of `panels` axes, `ncols` a row (default: all in one row), unused ones hidden."""
    ncols = ncols or panels
    nrows = -(-panels // ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def _levels_axis(ax, g: grid.Grid) -> None:
    """A second x axis on top, in levels q, for an axis in real values."""
    s, z = g.scale[0], g.zero_point[0]
    top = ax.secondary_xaxis("top", functions=(lambda v: v / s + z, lambda q: (q - z) * s))
    top.set_xlabel("level q", fontsize=8)


def _range_lines(ax, g: grid.Grid) -> None:
    for end in (g.low[0], g.high[0]):
        ax.axvline(end, color=CLIP, ls="--", lw=0.9, zorder=0.5)  # behind the data: the end levels show


def _zoom(ax, g: grid.Grid, x: np.ndarray, n: int = 8) -> np.ndarray:
    """Limit `ax` to `n` buckets around the busiest nonzero level; draw their edges; return them."""
    q = g.quantize(x).ravel()
    busy = q[q != g.zero_point[0]] if np.any(q != g.zero_point[0]) else q
    centre = int(np.clip(np.bincount(busy - g.qmin).argmax() + g.qmin, g.qmin + n // 2, g.qmax - n // 2))
    edges = g.edges()[centre - n // 2 - g.qmin: centre + n // 2 + 1 - g.qmin]
    for e in edges:
        ax.axvline(e, color="gray", ls=":", lw=0.8)
    ax.set_xlim(edges[0], edges[-1])
    return edges


def _by_level(ax, q: np.ndarray, g: grid.Grid) -> None:
    """One bar per level q, counting the integers `q`."""
    ax.bar(np.arange(g.qmin, g.qmax + 1), np.bincount(np.ravel(q) - g.qmin, minlength=g.levels), width=1.0)


def _over_buckets(ax, values: np.ndarray, deployed: np.ndarray, g: grid.Grid, ms: float = 3) -> np.ndarray:
    """Float values counted per bucket (filled) and deployed values per level (dots), log scale;
    returns the deployed counts."""
    ax.hist(np.ravel(values), bins=g.edges(), histtype="stepfilled", color=FLOAT, alpha=0.5, label="float model")
    counts = np.bincount(g.quantize(deployed).ravel() - g.qmin, minlength=g.levels)
    ax.plot(g.centers()[counts > 0], counts[counts > 0], ".", color=DEPLOYED, ms=ms, label="deployed model")
    _range_lines(ax, g)
    ax.set_yscale("log")
    return counts


def weight_histogram(w, g: grid.Grid, channel: int | None = None, title: str = "") -> Figure:
    """Weights over their int8 buckets: one bar per level (the range ends dashed), and a zoom on a
    few buckets where each dot is one weight between its bucket's edges. A per-axis grid without
    `channel`: every channel on its own grid, counted by level."""
    if g.per_axis and channel is None:
        fig, (ax,) = _figure(1, width=7)
        _by_level(ax, g.quantize(w), g)
        ax.set(xlabel="level q (each channel on its own scale)", ylabel="weights", title=title or
               f"all {g.scale.size} channels: {buckets.occupancy(w, g)['used']} of {g.levels} levels used")
        return fig
    x, g = buckets.one_channel(w, g, channel)
    fig, (ax, zoom) = _figure(2, width=4.2, height=3.2)
    ax.hist(x.ravel(), bins=g.edges())
    ax.plot(x.ravel(), np.zeros(x.size), "|", color="black", alpha=0.5, ms=10)  # a rug: lone weights show
    _range_lines(ax, g)
    _levels_axis(ax, g)
    used = buckets.used_levels(x, g)[0]
    ax.set(xlabel="weight", ylabel="weights per bucket", title=title or f"{x.size} weights use {used} of {g.levels} levels")
    edges = _zoom(zoom, g, x)
    zoom.plot(x.ravel(), np.random.default_rng(0).uniform(0.1, 0.9, x.size), "o", ms=3, alpha=0.6)
    zoom.plot((edges[:-1] + edges[1:]) / 2, np.zeros(len(edges) - 1), "k^", ms=7, label="level (stored value)")
    zoom.set(xlabel="weight", yticks=[], ylim=(-0.1, 1), title=f"zoom: {len(edges) - 1} buckets, edges dotted")
    zoom.legend(fontsize=7, loc="upper right")
    return fig


def weight_histograms(pair, per_tensor: bool = False) -> Figure:
    """Every quantized layer's weights counted by level, each channel on its own grid, with the
    levels used in the title. `per_tensor=True` refits one symmetric grid per tensor instead."""
    table = buckets.weight_table(pair)
    fig, axes = _figure(len(table), width=3.0, height=2.8)
    for ax, name in zip(axes, table.layer):
        w, g = buckets.layer_weights(pair, name)
        g = grid.weights(w, g.bits, axis=None) if per_tensor else g
        occ = buckets.occupancy(w, g)
        _by_level(ax, g.quantize(w), g)
        each = f"\nmedian channel {occ['used_median']:g}" if g.per_axis else ""
        ax.set(xlabel="level q", title=f"{name}: {occ['used']}/{g.levels} levels{each}")
        ax.title.set_fontsize(9)
    axes[0].set_ylabel("weights")
    fig.suptitle("weights on " + ("one grid per tensor" if per_tensor else "the deployed grids (per channel)"))
    return fig


def activation_histogram(values, deployed, g: grid.Grid, title: str = "") -> Figure:
    """A layer's outputs, float model against deployed model, over the activation grid: counts per
    bucket over the whole range (log), and a zoom where the float outputs spread out while the
    deployed ones stand on the levels."""
    values, deployed = np.asarray(values, np.float64).ravel(), np.asarray(deployed, np.float64).ravel()
    fig, (ax, zoom) = _figure(2, width=4.4, height=3.2)
    counts = _over_buckets(ax, values, deployed, g)
    ax.set(xlabel="activation", ylabel="values per bucket", title=title or "over the whole grid")
    ax.legend(fontsize=7)
    edges = _zoom(zoom, g, deployed)
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
    """Every quantized layer output for inputs `x`: float twin (bars) and deployed model (dots)
    counted per bucket of the deployed grid, log scale, range ends dashed."""
    names = layers or list(buckets.activation_table(pair, x[:1]).layer)
    fig, axes = _figure(len(names), ncols=min(3, len(names)), width=3.6, height=2.7)
    for ax, name in zip(axes, names):
        values, deployed, g = buckets.layer_activations(pair, name, x)
        _over_buckets(ax, values, deployed, g, ms=2)
        ax.set(xlabel=f"{name} output", title=f"{name}: scale {g.scale[0]:.3g}, zero point {g.zero_point[0]}")
        ax.title.set_fontsize(9)
    axes[0].legend(fontsize=7)
    return fig


def bucket_errors(x, g: grid.Grid, channel: int | None = None, title: str = "") -> Figure:
    """Error x − round_trip(x) against x (clipped values red, beyond the dashed range ends), a zoom
    on a few buckets where the sawtooth shows, and the mean and max |error| of every bucket."""
    x, g = buckets.one_channel(x, g, channel)
    rounding, clipping = buckets.errors(x, g)
    keep = np.random.default_rng(0).permutation(x.size)[:20000]
    v, e, c = x.ravel()[keep], (rounding + clipping).ravel()[keep], clipping.ravel()[keep] != 0
    fig, axes = _figure(3, width=3.8, height=3.1)
    for ax in axes[:2]:
        ax.plot(v[~c], e[~c], ".", ms=2, color=FLOAT, label="rounded")
        ax.plot(v[c], e[c], ".", ms=3, color=CLIP, label="clipped")
        for half in (-g.scale[0] / 2, g.scale[0] / 2):
            ax.axhline(half, color="gray", lw=0.8, ls="--")
        ax.set(xlabel="value x", ylabel="x − round_trip(x)")
    _range_lines(axes[0], g)
    axes[0].set_title(title or "error against value", fontsize=10)
    axes[0].legend(fontsize=7)
    edges = _zoom(axes[1], g, x)
    line = np.linspace(edges[0], edges[-1], 2000)
    axes[1].plot(line, line - g.round_trip(line), color="gray", lw=0.8)
    axes[1].set(ylim=(-0.6 * g.scale[0], 0.6 * g.scale[0]), title="zoom: the sawtooth, ±scale/2 dashed")
    table = buckets.bucket_table(x, g)
    axes[2].plot(table.level, table.max_abs_error, ".", ms=3, color=CLIP, label="max |error|")
    axes[2].plot(table.level, table.mean_abs_error, ".", ms=3, color=FLOAT, label="mean |error|")
    axes[2].axhline(g.scale[0] / 2, color="gray", lw=0.8, ls="--")
    axes[2].set(yscale="log", xlabel="level q", ylabel="|error|", title="per bucket (empty ones left out)")
    axes[2].legend(fontsize=7)
    return fig


def rounding_vs_clipping(table: pd.DataFrame) -> Figure:
    """Per layer, mean squared rounding and clipping error (log; labels: share clipped), and the
    total rmse in steps against 1/√12, the value for rounding alone."""
    fig, (ax, steps) = _figure(2, width=4.6, height=3.2)
    x = np.arange(len(table))
    ax.bar(x - 0.2, table.rounding_mse, 0.4, label="rounding", color=FLOAT)
    ax.bar(x + 0.2, table.clipping_mse.where(table.clipping_mse > 0, np.nan), 0.4, label="clipping", color=CLIP)
    for i, row in enumerate(table.itertuples()):
        ax.annotate(f"{100 * row.clipped_fraction:.2g} %" if row.clipped_fraction else "none",
                    (i + 0.2, row.clipping_mse or row.rounding_mse), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize=7)
    ax.set(yscale="log", ylabel="mean squared error", title="error by cause (label: values clipped)")
    ax.set_xticks(x, table.layer)
    ax.legend(fontsize=7)
    steps.bar(x, table["rmse/scale"], color="tab:purple")
    steps.axhline(1 / np.sqrt(12), color="black", ls="--", lw=0.8, label="rounding alone, 1/√12")
    steps.set_xticks(x, table.layer)
    steps.set(ylabel="rmse / scale", title="total error in steps")
    steps.legend(fontsize=7)
    return fig


def clip_sweep(sweeps, title: str = "") -> Figure:
    """Mean squared rounding, clipping and total error as the range shrinks (tables from
    `buckets.clip_sweep`; a dict of them gives one panel each), the lowest total marked."""
    sweeps = sweeps if isinstance(sweeps, dict) else {title or "clip-range sweep": sweeps}
    fig, axes = _figure(len(sweeps), width=4.4, height=3.2)
    for ax, (label, s) in zip(axes, sweeps.items()):
        ax.plot(s.fraction, s.rounding_mse, color=FLOAT, label="rounding")
        ax.plot(s.fraction, s.clipping_mse.where(s.clipping_mse > 0), color=CLIP, label="clipping")
        ax.plot(s.fraction, s.total_mse, "k", lw=2, label="total")
        best = s.loc[s.total_mse.idxmin()]
        ax.plot(best.fraction, best.total_mse, "ko", mfc="white")
        ax.set(yscale="log", xlabel="range kept (fraction of min..max)", ylabel="mean squared error")
        ax.set_title(f"{label}\ntotal least at {best.fraction:.2f} of the range, "
                     f"{s.total_mse.iloc[-1] / best.total_mse:.2f}× below full", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
    return fig


def before_after(table: pd.DataFrame) -> Figure:
    """Per ReLU layer, a grid fitted before the activation against one fitted after: levels the
    output can use (outline) and does use (filled), and its rounding error (rmse) under each."""
    fig, (ax, err) = _figure(2, width=4.6, height=3.2)
    x = np.arange(len(table))
    for shift, when, color in ((-0.2, "before", "tab:gray"), (0.2, "after", "tab:green")):
        ax.bar(x + shift, table[f"usable_{when}"], 0.4, fill=False, edgecolor=color)
        ax.bar(x + shift, table[f"used_{when}"], 0.4, color=color, alpha=0.7, label=f"fitted {when} ReLU")
        err.bar(x + shift, table[f"rmse_{when}"], 0.4, color=color, label=f"fitted {when} ReLU")
    ax.set(ylabel="levels", title="levels usable (outline) and used (filled)")
    err.set(ylabel="rmse of the ReLU output", title="rounding error")
    for a in (ax, err):
        a.set_xticks(x, table.layer)
        a.legend(fontsize=7, loc="lower left" if a is ax else "upper left")
    return fig


def before_after_ranges(pre, bits: int = 8, title: str = "") -> Figure:
    """A layer's pre-activation values with the range of a grid fitted to them (gray) and of one
    fitted after the ReLU (green): the gray grid spends its levels below 0 on values ReLU zeroes."""
    pre = np.asarray(pre, np.float64).ravel()
    before, after = grid.activations(pre, bits), grid.activations(np.maximum(pre, 0), bits)
    fig, (ax,) = _figure(1, width=7, height=3.2)
    ax.hist(pre, bins=200, color=FLOAT, alpha=0.6)
    ax.set_yscale("log")
    ax.set_ylim(0.5, ax.get_ylim()[1] * 300)  # room above the histogram for the two ranges
    for g, color, y, name in ((before, "tab:gray", 0.93, "before"), (after, "tab:green", 0.83, "after")):
        ax.axvspan(g.low[0], g.high[0], ymin=y - 0.07, ymax=y, color=color, alpha=0.6)
        ax.text(g.low[0], y - 0.035, f"  fitted {name} ReLU: scale {g.scale[0]:.3g}, zero point "
                f"{g.zero_point[0]}", va="center", fontsize=8, transform=ax.get_xaxis_transform())
    ax.axvspan(before.low[0], 0, ymax=0.86, color=CLIP, alpha=0.08)
    ax.set(xlabel="output before the ReLU", ylabel="values",
           title=title or f"fitted before the ReLU, {before.zero_point[0] - before.qmin} of {before.levels} "
                             "levels lie below 0 (shaded)")
    return fig
