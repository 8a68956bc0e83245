"""Figures of the calibration studies: how much calibration data post-training integer quantization
needs (`calibration_size_figures`, from `qlab.studies.calibration_size`) and which range method to
calibrate with (`calibration_method_figures`, from `qlab.studies.calibration_method`). Each reads a
study's tidy per-seed table (as `measure` returns it, or read back from the study's CSV) and draws
medians over seeds with their min–max spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.plots.figure import DEPLOYED, FLOAT, figure
from qlab.studies import calibration_method as method_study
from qlab.studies import calibration_size as size_study

TEST_SHIFT = 1.3
"""The ten test images are drawn at size 10 × this, beside the ten training images."""
METHOD_COLORS = {
    "minmax": "tab:blue",
    "percentile_99.9": "tab:orange",
    "percentile_99.99": "tab:green",
    "mse": "tab:purple",
    "entropy": "tab:brown",
    "aeq_calibrate": "tab:gray",
}
"""One colour per method; a method not listed here takes the next colour of matplotlib's cycle."""


def _is_full(settings: pd.Series) -> np.ndarray:
    """Which settings are full calibration ("all"), whether the table holds them as str or not."""
    return (settings.astype(str) == "all").to_numpy()


def calibration_size_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The calibration-size study's figures, by file stem, from its per-seed rows
    (`qlab.studies.calibration_size.measure`).

    Returns:
        {"calibration_size_accuracy": one panel per model, LiteRT test accuracy (%) against the
        number of training images calibrated on (log x), median with a min–max band over the draws
        (seeds); full calibration ("all") as a horizontal line with its ±`TOLERANCE_PP` band, and
        ten *test* images as a marker beside size 10; "calibration_size_ranges": one panel per
        model, each activation's range width (high − low) over full calibration's, median over
        draws, one line per layer (layers that share one grid, e.g. a Flatten and the conv before
        it, drawn once), test images as hollow markers beside size 10.}"""
    return {
        "calibration_size_accuracy": _size_accuracy(table),
        "calibration_size_ranges": _size_ranges(table),
    }


def _size_accuracy(table: pd.DataFrame) -> Figure:
    summary = size_study.summary(table) if len(table) else pd.DataFrame(columns=["model"])
    names = list(dict.fromkeys(summary.model))
    fig, axes = figure(max(len(names), 1), width=6.0, height=3.6)
    for ax, name in zip(axes, names):
        rows = summary[summary.model == name]
        full = _is_full(rows.setting)
        train = rows[(rows.split == "train") & ~full].sort_values("size")
        ax.plot(
            train["size"],
            train.accuracy_pct,
            "o-",
            color=FLOAT,
            label="training images, median over draws",
        )
        ax.fill_between(
            train["size"],
            train.accuracy_min_pct,
            train.accuracy_max_pct,
            color=FLOAT,
            alpha=0.18,
            lw=0,
            label="min–max over draws",
        )
        if full.any():
            level, size = rows[full].accuracy_pct.iloc[0], int(rows[full]["size"].iloc[0])
            ax.axhline(level, color="black", lw=1, label=f"all {size} training images")
            ax.plot(size, level, "s", color="black", ms=6)
            ax.axhspan(
                level - size_study.TOLERANCE_PP,
                level + size_study.TOLERANCE_PP,
                color="gray",
                alpha=0.15,
                lw=0,
                label=f"±{size_study.TOLERANCE_PP} pp of full calibration",
            )
        for _, t in rows[rows.split == "test"].iterrows():
            ax.errorbar(
                t["size"] * TEST_SHIFT,
                t.accuracy_pct,
                [[t.accuracy_pct - t.accuracy_min_pct], [t.accuracy_max_pct - t.accuracy_pct]],
                fmt="D",
                color=DEPLOYED,
                ms=7,
                capsize=3,
                label=f"{int(t['size'])} test images (median, min–max)",
                zorder=3,
            )
        seeds = int(rows.seeds.max())
        ax.set_xscale("log")
        ax.set(
            xlabel="calibration images (log scale)",
            ylabel="int8 test accuracy on LiteRT (%)",
            title=f"{name}: accuracy against calibration size, {seeds} draw(s)",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return fig


def _size_ranges(table: pd.DataFrame) -> Figure:
    names = list(dict.fromkeys(table.model)) if len(table) else []
    fig, axes = figure(max(len(names), 1), width=6.0, height=3.6)
    for ax, name in zip(axes, names):
        part = table[table.model == name].assign(width=lambda t: t.high - t.low)
        full = part[_is_full(part.setting)].groupby("layer", sort=False).width.median()
        part = part[part.layer.isin(full.index)].assign(
            ratio=lambda t, full=full: t.width / t.layer.map(full).to_numpy()
        )
        per = part.groupby(["layer", "split", "size"], sort=False).ratio.median()
        shown = _distinct_layers(part)
        for k, (layer, label) in enumerate(shown.items()):
            color = f"C{k % 10}"
            train = (
                per.loc[layer].loc["train"].sort_index()
                if "train" in per.loc[layer].index
                else pd.Series()
            )
            ax.plot(train.index, train.to_numpy(), "o-", ms=4, color=color, label=label)
            if "test" in per.loc[layer].index:
                test = per.loc[layer].loc["test"]
                ax.plot(
                    test.index * TEST_SHIFT, test.to_numpy(), "D", mfc="none", color=color, ms=6
                )
        ax.axhline(1, color="black", lw=0.8)
        ax.plot([], [], "D", mfc="none", color="gray", label="10 test images")
        ax.set_xscale("log")
        ax.set(
            xlabel="calibration images (log scale)",
            ylabel="range width / full calibration's",
            title=f"{name}: range widths, median over draws",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", ncol=2)
    return fig


def _distinct_layers(part: pd.DataFrame) -> dict[str, str]:
    """{layer: legend label} for the layers whose ranges differ from every layer before them in
    every cell; a layer with the same ranges as an earlier one (one grid shared) joins its label."""
    shown: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for layer, rows in part.groupby("layer", sort=False):
        values = tuple(np.round(rows.sort_values(["seed", "size", "split"]).width.to_numpy(), 9))
        if values in seen:
            shown[seen[values]] += f" = {layer}"
        else:
            seen[values] = layer
            shown[layer] = layer
    return shown


def calibration_method_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The calibration-method study's figures, by file stem, from its per-seed rows
    (`qlab.studies.calibration_method.measure`).

    Returns:
        {"calibration_method_accuracy": two panels per model, LiteRT test accuracy (%) per method
        and its change against minmax's on the same seed (pp), each the median with a min–max bar
        over seeds, the float32 file's median as a dotted line; "calibration_method_errors": two
        panels per model, the test split's rounding and clipping error (mean squared, real units²,
        median over seeds, log scale) per layer, one bar per method, for the layers whose range the
        method chooses (layers whose grid AEQ ties to another or fixes are left out).}"""
    return {
        "calibration_method_accuracy": _method_accuracy(table),
        "calibration_method_errors": _method_errors(table),
    }


def _colors(methods) -> dict[str, str]:
    extra = iter(f"C{k}" for k in range(10))
    return {m: METHOD_COLORS.get(m) or next(extra) for m in methods}


def _method_accuracy(table: pd.DataFrame) -> Figure:
    summary = method_study.summary(table) if len(table) else pd.DataFrame(columns=["model"])
    names = list(dict.fromkeys(summary.model))
    fig, axes = figure(2 * max(len(names), 1), ncols=2, width=5.2, height=3.6)
    for row, name in enumerate(names):
        rows = summary[summary.model == name].reset_index(drop=True)
        colors = _colors(rows.setting)
        panels = (
            ("accuracy", "int8 test accuracy on LiteRT (%)", "accuracy"),
            ("delta", "accuracy − minmax's, same seed (pp)", "change against minmax, same seed"),
        )
        for ax, (column, ylabel, what) in zip(axes[2 * row : 2 * row + 2], panels):
            value = rows.accuracy_pct if column == "accuracy" else rows.delta_pp
            low = rows.accuracy_min_pct if column == "accuracy" else rows.delta_min_pp
            high = rows.accuracy_max_pct if column == "accuracy" else rows.delta_max_pp
            for i in range(len(rows)):
                ax.errorbar(
                    i,
                    value[i],
                    [[value[i] - low[i]], [high[i] - value[i]]],
                    fmt="o",
                    ms=7,
                    capsize=4,
                    color=colors[rows.setting[i]],
                )
            ax.set_xticks(range(len(rows)), rows.setting, rotation=25, fontsize=8)
            ax.set(ylabel=ylabel, title=f"{name}: {what}, {int(rows.seeds.max())} seed(s)")
            ax.grid(alpha=0.3, axis="y")
        floats = table[table.model == name].drop_duplicates(["seed"]).float_accuracy
        axes[2 * row].axhline(
            100 * floats.median(), color="gray", ls=":", lw=1.2, label="float32 file (median)"
        )
        axes[2 * row].legend(fontsize=7, loc="lower left")
        axes[2 * row + 1].axhline(0, color=FLOAT, ls="--", lw=0.8)
    return fig


def _method_errors(table: pd.DataFrame) -> Figure:
    names = list(dict.fromkeys(table.model)) if len(table) else []
    fig, axes = figure(2 * max(len(names), 1), ncols=2, width=6.0, height=3.6)
    for row, name in enumerate(names):
        part = table[table.model == name].assign(constraint=lambda t: t.constraint.fillna(""))
        tied = set(part[part.constraint != ""].layer)
        part = part[~part.layer.isin(tied)].dropna(subset=["rounding_mse", "clipping_mse"])
        layers = list(dict.fromkeys(part.layer))
        methods = list(dict.fromkeys(part.setting))
        colors = _colors(methods)
        width = 0.8 / max(len(methods), 1)
        for col, (column, what) in enumerate(
            (("rounding_mse", "rounding"), ("clipping_mse", "clipping"))
        ):
            ax = axes[2 * row + col]
            medians = part.groupby(["setting", "layer"], sort=False)[column].median()
            for j, method in enumerate(methods):
                values = medians.loc[method].reindex(layers).to_numpy(float)
                x = np.arange(len(layers)) + (j - (len(methods) - 1) / 2) * width
                ax.bar(
                    x,
                    np.where(values > 0, values, np.nan),
                    width,
                    color=colors[method],
                    label=method,
                    hatch="//" if what == "clipping" else None,
                    edgecolor="white" if what == "clipping" else None,
                )
            ax.set_yscale("log")
            ax.set_xticks(range(len(layers)), layers, fontsize=8, rotation=20)
            ax.set(
                ylabel=f"{what} error, MSE (real units²)",
                title=f"{name}: {what} error per layer (no bar: none)",
            )
            ax.grid(alpha=0.3, axis="y")
        lows = [a.get_ylim()[0] for a in axes[2 * row : 2 * row + 2]]
        highs = [a.get_ylim()[1] for a in axes[2 * row : 2 * row + 2]]
        for a in axes[2 * row : 2 * row + 2]:
            a.set_ylim(
                min(lows), max(highs)
            )  # one scale for both panels: rounding and clipping compare
        axes[2 * row].legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle(
        "The test split's activations on each method's grid: rounding (left) against clipping "
        "(right), median over seeds",
        fontsize=9,
    )
    return fig
