"""Figures of the error a quantization grid makes and of choosing its range: bucket errors,
rounding vs clipping, the clip-range sweep, and the range before vs after a ReLU. Each returns a
matplotlib Figure; no global style changes.

The tables come from `qlab.analysis.buckets`: `activation_table` or `weight_table`
(`rounding_vs_clipping`), `clip_sweep` (`clip_sweep`) and `before_after` (`before_after`);
`bucket_errors` takes values and their `qlab.analysis.grid.Grid`, `before_after_ranges` the
output of `qlab.analysis.capture.preactivation`. Colours as in `qlab.plots.histograms`: blue
is rounding (or the float values), red clipping and the range ends.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.analysis import buckets, grid
from qlab.plots.figure import CLIP, FLOAT, figure, range_lines, zoom_buckets


def bucket_errors(x, g: grid.Grid, channel: int | None = None, title: str = "") -> Figure:
    """Error x − round_trip(x) against x, a zoom on the sawtooth, and each bucket's |error|.

    Left: up to 20,000 of the values (seed 0) as dots, blue where only rounded, red where clipped;
    range ends red dashed, ±scale/2 (the most rounding can cost) gray dashed. Middle: the 8 buckets
    around the busiest nonzero level, with the error of every x there as a gray line. Right: per
    level, the mean (blue) and max (red) |error| of the values landing on it, log y; empty levels
    left out. `x` is a layer's outputs or weights (`qlab.analysis.buckets.layer_activations` or
    `layer_weights`), any shape; `channel` is required with a per-axis grid.

    Returns:
        The Figure: 3 panels side by side.

    Raises:
        ValueError: from `qlab.analysis.buckets.one_channel`: `x` is empty or not finite, does
            not have one slice per channel of a per-axis grid, or `channel` is missing or not
            one of that grid's channels."""
    x, g = buckets.one_channel(x, g, channel)
    rounding, clipping = buckets.errors(x, g)
    keep = np.random.default_rng(0).permutation(x.size)[:20000]
    v, e, c = x.ravel()[keep], (rounding + clipping).ravel()[keep], clipping.ravel()[keep] != 0
    fig, axes = figure(3, width=3.8, height=3.1)
    for ax in axes[:2]:
        ax.plot(v[~c], e[~c], ".", ms=2, color=FLOAT, label="rounded")
        ax.plot(v[c], e[c], ".", ms=3, color=CLIP, label="clipped")
        for half in (-g.scale[0] / 2, g.scale[0] / 2):
            ax.axhline(half, color="gray", lw=0.8, ls="--")
        ax.set(xlabel="value x", ylabel="x − round_trip(x)")
    range_lines(axes[0], g)
    axes[0].set_title(title or "error against value", fontsize=10)
    axes[0].legend(fontsize=7)
    edges = zoom_buckets(axes[1], g, x)
    line = np.linspace(edges[0], edges[-1], 2000)
    axes[1].plot(line, line - g.round_trip(line), color="gray", lw=0.8)
    axes[1].set(
        ylim=(-0.6 * g.scale[0], 0.6 * g.scale[0]), title="zoom: the sawtooth, ±scale/2 dashed"
    )
    table = buckets.bucket_table(x, g)
    axes[2].plot(table.level, table.max_abs_error, ".", ms=3, color=CLIP, label="max |error|")
    axes[2].plot(table.level, table.mean_abs_error, ".", ms=3, color=FLOAT, label="mean |error|")
    axes[2].axhline(g.scale[0] / 2, color="gray", lw=0.8, ls="--")
    axes[2].set(
        yscale="log", xlabel="level q", ylabel="|error|", title="per bucket (empty ones left out)"
    )
    axes[2].legend(fontsize=7)
    return fig


def rounding_vs_clipping(table: pd.DataFrame) -> Figure:
    """Per layer, mean squared rounding (blue) and clipping (red) error, log y, labelled with
    the share clipped; beside it the total rmse in steps against 1/√12, rounding alone (above it,
    clipping or uneven rounding adds error). `table` is from
    `qlab.analysis.buckets.activation_table` or `weight_table`.

    Returns the Figure: 2 panels side by side."""
    fig, (ax, steps) = figure(2, width=4.6, height=3.2)
    x = np.arange(len(table))
    ax.bar(x - 0.2, table.rounding_mse, 0.4, label="rounding", color=FLOAT)
    ax.bar(
        x + 0.2,
        table.clipping_mse.where(table.clipping_mse > 0, np.nan),
        0.4,
        label="clipping",
        color=CLIP,
    )
    for i, row in enumerate(table.itertuples()):
        ax.annotate(
            f"{100 * row.clipped_fraction:.2g} %" if row.clipped_fraction else "none",
            (i + 0.2, row.clipping_mse or row.rounding_mse),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=7,
        )
    ax.set(
        yscale="log", ylabel="mean squared error", title="error by cause (label: values clipped)"
    )
    ax.set_xticks(x, table.layer)
    ax.legend(fontsize=7)
    steps.bar(x, table["rmse/scale"], color="tab:purple")
    steps.axhline(1 / np.sqrt(12), color="black", ls="--", lw=0.8, label="rounding alone, 1/√12")
    steps.set_xticks(x, table.layer)
    steps.set(ylabel="rmse / scale", title="total error in steps")
    steps.legend(fontsize=7)
    return fig


def clip_sweep(sweeps, title: str = "") -> Figure:
    """Mean squared rounding, clipping and total error as the range kept shrinks, log y, the lowest
    total marked and its gain over the full range (the last row) in the title. `sweeps` is a table
    from `qlab.analysis.buckets.clip_sweep` (titled `title`) or a dict {panel title: table}.

    Returns the Figure: one panel per sweep, in one row."""
    sweeps = sweeps if isinstance(sweeps, dict) else {title or "clip-range sweep": sweeps}
    fig, axes = figure(len(sweeps), width=4.4, height=3.2)
    for ax, (label, s) in zip(axes, sweeps.items()):
        ax.plot(s.fraction, s.rounding_mse, color=FLOAT, label="rounding")
        ax.plot(s.fraction, s.clipping_mse.where(s.clipping_mse > 0), color=CLIP, label="clipping")
        ax.plot(s.fraction, s.total_mse, "k", lw=2, label="total")
        best = s.loc[s.total_mse.idxmin()]
        ax.plot(best.fraction, best.total_mse, "ko", mfc="white")
        ax.set(
            yscale="log", xlabel="range kept (fraction of min..max)", ylabel="mean squared error"
        )
        ax.set_title(
            f"{label}\ntotal least at {best.fraction:.2f} of the range, "
            f"{s.total_mse.iloc[-1] / best.total_mse:.2f}× below full",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="lower left")
    return fig


def before_after(table: pd.DataFrame) -> Figure:
    """Per ReLU layer, a grid fitted before the activation (gray) against one fitted after (green):
    the levels the output can use (outline) and does use (filled), and its rmse (real units) under
    each. `table` is from `qlab.analysis.buckets.before_after`.

    Returns the Figure: 2 panels side by side."""
    fig, (ax, err) = figure(2, width=4.6, height=3.2)
    x = np.arange(len(table))
    for shift, when, color in ((-0.2, "before", "tab:gray"), (0.2, "after", "tab:green")):
        ax.bar(x + shift, table[f"usable_{when}"], 0.4, fill=False, edgecolor=color)
        ax.bar(
            x + shift,
            table[f"used_{when}"],
            0.4,
            color=color,
            alpha=0.7,
            label=f"fitted {when} ReLU",
        )
        err.bar(x + shift, table[f"rmse_{when}"], 0.4, color=color, label=f"fitted {when} ReLU")
    ax.set(ylabel="levels", title="levels usable (outline) and used (filled)")
    err.set(ylabel="rmse of the ReLU output", title="rounding error")
    for a in (ax, err):
        a.set_xticks(x, table.layer)
        a.legend(fontsize=7, loc="lower left" if a is ax else "upper left")
    return fig


def before_after_ranges(pre, bits: int = 8, title: str = "") -> Figure:
    """A layer's pre-activation values (histogram, log y) with the range of a grid fitted to them
    (gray) and of one fitted after the ReLU (green), each labelled with its scale and zero point;
    the gray range below 0, levels spent on values ReLU zeroes, is shaded red. With `bits` 8 the
    grids are asymmetric, as the converter fits activations; above 8, symmetric.

    Returns:
        The Figure: 1 panel.

    Raises:
        ValueError: from `qlab.analysis.grid.fit`: `pre` is empty or not finite, or `bits` is
            not an integer from 2 to 16."""
    pre = np.asarray(pre, np.float64).ravel()
    before, after = grid.activations(pre, bits), grid.activations(np.maximum(pre, 0), bits)
    fig, (ax,) = figure(1, width=7, height=3.2)
    ax.hist(pre, bins=200, color=FLOAT, alpha=0.6)
    ax.set_yscale("log")
    ax.set_ylim(0.5, ax.get_ylim()[1] * 300)  # room above the histogram for the two ranges
    for g, color, y, name in (
        (before, "tab:gray", 0.93, "before"),
        (after, "tab:green", 0.83, "after"),
    ):
        ax.axvspan(g.low[0], g.high[0], ymin=y - 0.07, ymax=y, color=color, alpha=0.6)
        ax.text(
            g.low[0],
            y - 0.035,
            f"  fitted {name} ReLU: scale {g.scale[0]:.3g}, zero point {g.zero_point[0]}",
            va="center",
            fontsize=8,
            transform=ax.get_xaxis_transform(),
        )
    ax.axvspan(before.low[0], 0, ymax=0.86, color=CLIP, alpha=0.08)
    ax.set(
        xlabel="output before the ReLU",
        ylabel="values",
        title=title
        or f"fitted before the ReLU, {before.zero_point[0] - before.qmin} of {before.levels} "
        "levels lie below 0 (shaded)",
    )
    return fig
