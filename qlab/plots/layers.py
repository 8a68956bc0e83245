"""Figures of per-layer error: the two views, error growth, layers kept in float, per-channel
weight ranges, QAT against deployed, where two integer runs disagree. Each returns a matplotlib
Figure; tables come from `qlab.analysis.per_layer`, `qlab.analysis.variants` and
`qlab.intmath.compare`.

`layer_errors` and `error_growth` take tables of `per_layer.layer_errors` (also `debugger`),
`qat_vs_deployed` the table of `per_layer.qat_vs_deployed`, `keep_float_tradeoff` and
`channel_ranges` those of `variants.keep_float_sweep` and `variants.channel_ranges`, and
`lsb_differences` tables of `qlab.intmath.compare.compare`. Each view has one colour throughout
(`VIEW_COLORS`): local blue, accumulated orange, debugger green, qat purple."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.analysis.per_layer import ROUNDING_ONLY
from qlab.plots.figure import figure

VIEW_COLORS = {
    "local": "tab:blue",
    "accumulated": "tab:orange",
    "debugger": "tab:green",
    "qat": "tab:purple",
}


def layer_errors(table: pd.DataFrame, title: str = "") -> Figure:
    """rmse/scale (error in output levels) per layer, one bar per view in its `VIEW_COLORS`; the
    dashed line is rounding alone (1/√12). `table` is from `qlab.analysis.per_layer.layer_errors`,
    `debugger` or `qat_vs_deployed`, or several concatenated. Rows without rmse/scale (outputs kept
    in float) are left out; the y axis turns logarithmic past a 50× spread.

    Returns the Figure: 1 panel."""
    table = table[table["rmse/scale"].notna()]
    views = [v for v in VIEW_COLORS if v in set(table["view"])]
    layers = list(dict.fromkeys(table["layer"]))
    fig, (ax,) = figure(1, width=7, height=3.2)
    width = 0.8 / max(len(views), 1)
    for i, view in enumerate(views):
        rows = table[table["view"] == view].set_index("layer").reindex(layers)
        ax.bar(
            np.arange(len(layers)) + (i - (len(views) - 1) / 2) * width,
            rows["rmse/scale"],
            width,
            label=view,
            color=VIEW_COLORS[view],
        )
    ax.axhline(ROUNDING_ONLY, color="black", ls="--", lw=0.8, label="rounding only (0.289)")
    values = table["rmse/scale"][table["rmse/scale"] > 0]
    if len(values) and values.max() / values.min() > 50:
        ax.set_yscale("log")
    ax.set_xticks(range(len(layers)), layers)
    ax.set(
        ylabel="rmse / output scale (levels)",
        title=title or "error each layer adds (local) and carries (accumulated), in output levels",
    )
    ax.legend(fontsize=8)
    return fig


def error_growth(tables: dict[str, pd.DataFrame], view: str = "accumulated") -> Figure:
    """One line per table ({label: `per_layer.layer_errors` table}): how a `view`'s rmse against the
    float model grows from layer to layer, real units, log y; a layer with no error has no point.

    Returns the Figure: 1 panel."""
    fig, (ax,) = figure(1, width=7, height=3.2)
    for label, table in tables.items():
        rows = table[table["view"] == view]
        rmse = np.sqrt(rows["mean_squared_error"].to_numpy(float))
        ax.plot(rows["layer"], np.where(rmse > 1e-12, rmse, np.nan), marker="o", label=label)
    ax.set_yscale("log")
    ax.set(
        ylabel="rmse against float (real units)",
        title=f"{view} error, layer by layer (no point: no error at all)",
    )
    ax.legend(fontsize=8)
    return fig


def keep_float_tradeoff(sweep: pd.DataFrame) -> Figure:
    """Output rmse against size (KB) for each choice of layers kept in float, labelled with the
    layers and the accuracy; `sweep` is from `qlab.analysis.variants.keep_float_sweep`.

    Returns the Figure: 1 panel."""
    fig, (ax,) = figure(1, width=7, height=3.4)
    ax.scatter(sweep["size_bytes"] / 1024, sweep["output_rmse"], color="tab:red")
    for _, row in sweep.iterrows():
        ax.annotate(
            f"{row['keep_float']}  {100 * row['accuracy']:.2f} %",
            (row["size_bytes"] / 1024, row["output_rmse"]),
            fontsize=8,
            xytext=(4, 3),
            textcoords="offset points",
        )
    ax.set(
        xlabel="size (KB)",
        ylabel="output rmse against float32",
        title="keeping layers in float: size paid, error and accuracy bought",
    )
    return fig


def channel_ranges(ranges: pd.DataFrame) -> Figure:
    """Each output channel's largest |weight|, sorted, per layer; the line is the tensor's largest,
    which sets the one scale a per-tensor grid gives every channel. The title gives the fewest int8
    levels a channel spans on that grid. `ranges` is from `qlab.analysis.variants.channel_ranges`.

    Returns the Figure: one panel per layer, in one row."""
    layers = list(dict.fromkeys(ranges["layer"]))
    fig, axes = figure(len(layers), width=2.2, height=2.8)
    for ax, layer in zip(axes, layers):
        rows = ranges[ranges["layer"] == layer].sort_values("max_abs")
        ax.bar(range(len(rows)), rows["max_abs"], color="tab:cyan", width=1.0)
        ax.axhline(rows["max_abs"].max(), color="black", lw=0.8)
        ax.set_title(f"{layer}: {rows['levels_per_tensor'].min()}–255 levels", fontsize=9)
        ax.set_xlabel("channel (sorted)")
        ax.set_xticks([])
    axes[0].set_ylabel("max |weight|")
    return fig


def qat_vs_deployed(table: pd.DataFrame) -> Figure:
    """Share of each layer's values where the QAT Keras model and the deployed model land on
    different levels, labelled with the largest gap in levels; `table` holds the qat rows of
    `qlab.analysis.per_layer.qat_vs_deployed`.

    Returns the Figure: 1 panel."""
    fig, (ax,) = figure(1, width=7, height=3.0)
    bars = ax.bar(table["layer"], 100 * table["lsb_off"], color=VIEW_COLORS["qat"])
    ax.bar_label(bars, labels=[f"max {m:.0f}" for m in table["max_lsb"]], fontsize=8)
    ax.set(
        ylabel="% of values a level apart", title="QAT Keras model against the deployed int8 model"
    )
    return fig


def lsb_differences(tables: dict[str, pd.DataFrame], title: str = "") -> Figure:
    """Per layer, the share of int8 values two runs disagree on (log y), labelled ±max LSB; one bar
    per comparison ({name: `qlab.intmath.compare.compare` table}, all of the same model).

    Returns the Figure: 1 panel."""
    fig, (ax,) = figure(1, width=8, height=3.4)
    names = list(tables)
    layers = list(next(iter(tables.values())).layer)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        t = tables[name]
        share = 100 * t.different / t["values"]
        x = np.arange(len(t)) + (k - (len(names) - 1) / 2) * width
        bars = ax.bar(x, share.where(share > 0, np.nan), width, label=name)
        ax.bar_label(bars, labels=[f"±{m}" if m else "" for m in t.max_lsb], fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(range(len(layers)), layers)
    ax.set(
        ylabel="% of values that differ",
        title=title or "where two int8 runs disagree (label: max LSB)",
    )
    ax.legend(fontsize=8)
    return fig
