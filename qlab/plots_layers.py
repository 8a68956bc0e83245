"""Figures of per-layer error: the two views, error growth, layers kept in float, per-channel
weight ranges, QAT against deployed. Each returns a matplotlib Figure; no global style changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.layer_errors import ROUNDING_ONLY
from qlab.plots import _figure

VIEW_COLORS = {"local": "tab:blue", "accumulated": "tab:orange", "debugger": "tab:green", "qat": "tab:purple"}


def layer_errors(table: pd.DataFrame, title: str = "") -> Figure:
    """rmse/scale per layer, one bar per view; the dashed line is rounding alone (1/√12)."""
    table = table[table["rmse/scale"].notna()]
    views = [v for v in VIEW_COLORS if v in set(table["view"])]
    layers = list(dict.fromkeys(table["layer"]))
    fig, ax = _figure(7, 3.2)
    width = 0.8 / max(len(views), 1)
    for i, view in enumerate(views):
        rows = table[table["view"] == view].set_index("layer").reindex(layers)
        ax.bar(np.arange(len(layers)) + (i - (len(views) - 1) / 2) * width, rows["rmse/scale"],
               width, label=view, color=VIEW_COLORS[view])
    ax.axhline(ROUNDING_ONLY, color="black", ls="--", lw=0.8, label="rounding only (0.289)")
    values = table["rmse/scale"][table["rmse/scale"] > 0]
    if len(values) and values.max() / values.min() > 50:
        ax.set_yscale("log")
    ax.set_xticks(range(len(layers)), layers)
    ax.set(ylabel="rmse / output scale (levels)", title=title or "error each layer adds (local) "
           "and carries (accumulated), in output levels")
    ax.legend(fontsize=8)
    return fig


def error_growth(tables: dict[str, pd.DataFrame], view: str = "accumulated") -> Figure:
    """One line per model: how a view's rmse grows from layer to layer (absolute, log scale)."""
    fig, ax = _figure(7, 3.2)
    for label, table in tables.items():
        rows = table[table["view"] == view]
        rmse = np.sqrt(rows["mean_squared_error"].to_numpy(float))
        ax.plot(rows["layer"], np.where(rmse > 1e-12, rmse, np.nan), marker="o", label=label)
    ax.set_yscale("log")
    ax.set(ylabel="rmse against float (real units)",
           title=f"{view} error, layer by layer (no point: no error at all)")
    ax.legend(fontsize=8)
    return fig


def keep_float_tradeoff(sweep: pd.DataFrame) -> Figure:
    """Output error against size for each choice of layers kept in float; accuracy beside each."""
    fig, ax = _figure(7, 3.4)
    ax.scatter(sweep["size_bytes"] / 1024, sweep["output_rmse"], color="tab:red")
    for _, row in sweep.iterrows():
        ax.annotate(f"{row['keep_float']}  {100 * row['accuracy']:.2f} %",
                    (row["size_bytes"] / 1024, row["output_rmse"]), fontsize=8,
                    xytext=(4, 3), textcoords="offset points")
    ax.set(xlabel="size (KB)", ylabel="output rmse against float32",
           title="keeping layers in float: size paid, error and accuracy bought")
    return fig


def channel_ranges(ranges: pd.DataFrame) -> Figure:
    """Each output channel's largest |weight|, sorted, per layer; the line is the tensor's
    largest, which sets the one scale a per-tensor grid gives every channel."""
    layers = list(dict.fromkeys(ranges["layer"]))
    fig, axes = _figure(2.2 * len(layers), 2.8, len(layers))
    for ax, layer in zip(np.atleast_1d(axes), layers):
        rows = ranges[ranges["layer"] == layer].sort_values("max_abs")
        ax.bar(range(len(rows)), rows["max_abs"], color="tab:cyan", width=1.0)
        ax.axhline(rows["max_abs"].max(), color="black", lw=0.8)
        ax.set_title(f"{layer}: {rows['levels_per_tensor'].min()}–255 levels", fontsize=9)
        ax.set_xlabel("channel (sorted)")
        ax.set_xticks([])
    np.atleast_1d(axes)[0].set_ylabel("max |weight|")
    return fig


def qat_vs_deployed(table: pd.DataFrame) -> Figure:
    """Share of each layer's values where the QAT Keras model and the deployed model land on
    different levels; the label is the largest gap, in levels."""
    fig, ax = _figure(7, 3.0)
    bars = ax.bar(table["layer"], 100 * table["lsb_off"], color=VIEW_COLORS["qat"])
    ax.bar_label(bars, labels=[f"max {m:.0f}" for m in table["max_lsb"]], fontsize=8)
    ax.set(ylabel="% of values a level apart", title="QAT Keras model against the deployed int8 model")
    return fig
