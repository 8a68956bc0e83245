"""Figures of recurrent models after quantization: accuracy against float per setting over seeds
and the LSTM's error at its first and last time step (`recurrent_figures`, from
`qlab.studies.recurrent`), the bit widths inside the fused LSTM op (`lstm_types`) and the error
step by step (`error_over_time`), both from `qlab.analysis.recurrent` tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.analysis.per_layer import ROUNDING_ONLY
from qlab.plots.figure import figure
from qlab.studies import recurrent as study

BIT_COLORS = {8: "tab:blue", 16: "tab:orange", 32: "tab:red"}
FLOAT_COLOR = "tab:gray"
STEP_COLORS = {"first_step_steps": "tab:blue", "last_step_steps": "tab:orange"}


def recurrent_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The recurrent study's figures, by file stem, from its per-seed rows
    (`qlab.studies.recurrent.measure`).

    Returns:
        {"recurrent_accuracy": one panel per model, the accuracy change against the same seed's
        float32 file (percentage points) per setting, median with a min-max bar over seeds, and
        "not computed" where a setting has no measurement; "recurrent_error_steps": one panel
        per model, the accumulated error of the LSTM's output at its first and last time step
        (rmse in output steps) per quantized setting, median with min-max bars.}"""
    summary = study.summary(table)
    return {"recurrent_accuracy": _accuracy(summary), "recurrent_error_steps": _steps(summary)}


def _accuracy(summary: pd.DataFrame) -> Figure:
    names = list(dict.fromkeys(summary.model))
    fig, axes = figure(max(len(names), 1), width=6.5, height=3.2)
    for ax, name in zip(axes, names):
        rows = summary[summary.model == name].reset_index(drop=True)
        x = np.arange(len(rows))
        measured = rows.delta_pp.notna()
        low, high = rows.delta_pp - rows.delta_min_pp, rows.delta_max_pp - rows.delta_pp
        ax.errorbar(
            x[measured],
            rows.delta_pp[measured],
            yerr=[low[measured], high[measured]],
            fmt="o",
            color="tab:blue",
            capsize=4,
            label="median, min-max over seeds",
        )
        for i in x[~measured]:
            ax.text(i, 0, "not\ncomputed", ha="center", va="center", fontsize=8, color=FLOAT_COLOR)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, rows.setting, rotation=20)
        seeds = int(rows.seeds.max()) if len(rows) else 0
        ax.set(
            ylabel="accuracy - float32 (pp)",
            title=f"{name}: accuracy against float32, {seeds} seed(s)",
        )
        span = np.nanmax(np.abs(np.r_[rows.delta_min_pp, rows.delta_max_pp, 0.5]))
        ax.set_ylim(-1.3 * span, 1.3 * span)
        ax.legend(fontsize=8, loc="upper left")
    return fig


def _steps(summary: pd.DataFrame) -> Figure:
    names = list(dict.fromkeys(summary.model))
    fig, axes = figure(max(len(names), 1), width=6.5, height=3.2)
    for ax, name in zip(axes, names):
        rows = summary[(summary.model == name) & summary.last_step_steps.notna()].reset_index(
            drop=True
        )
        x = np.arange(len(rows))
        for k, (column, color) in enumerate(STEP_COLORS.items()):
            low = rows[column] - rows[column.replace("_steps", "_min_steps")]
            high = rows[column.replace("_steps", "_max_steps")] - rows[column]
            ax.bar(
                x + (k - 0.5) * 0.38,
                rows[column],
                0.38,
                yerr=[low, high],
                capsize=3,
                color=color,
                label=column.split("_")[0] + " time step",
            )
        ax.axhline(ROUNDING_ONLY, color="black", ls="--", lw=0.8, label="rounding only (0.289)")
        ax.set_xticks(x, rows.setting)
        ax.set(
            ylabel="rmse / output scale (levels)",
            title=f"{name}: the LSTM output's error, first and last time step",
        )
        ax.legend(fontsize=8)
    return fig


def lstm_types(tensors: pd.DataFrame, arithmetic: pd.DataFrame | None = None) -> Figure:
    """The bit width of every tensor the fused LSTM op has in the file (`lstm_tensors`; absent
    slots left out) and of every stage of its integer arithmetic (`lstm_arithmetic`, when given),
    coloured by width: 8 blue, 16 orange, 32 red, float gray.

    Returns the Figure: 1 panel (one bar per role, labelled with dtype and scale), or 2 (and the
    stages of one time step, labelled with where their grid comes from)."""
    present = tensors[tensors.tensor >= 0].iloc[::-1]
    unread = present.note.str.startswith("not read").to_numpy()
    labels = present.role + np.where(unread, " (not read)", "")
    if present.layer.nunique() > 1:
        labels = present.layer + ": " + labels
    panels = [(present, labels, present.dtype, present.scale, "tensors in the file")]
    if arithmetic is not None:
        stages = arithmetic.iloc[::-1]
        panels.append(
            (
                stages,
                stages.stage + "  " + stages.symbol,
                stages.dtype,
                stages.scale,
                "one time step of the integer kernel",
            )
        )
    fig, axes = figure(len(panels), width=6.5, height=0.28 * max(len(p[0]) for p in panels) + 1.2)
    for ax, (rows, labels, dtypes, scales, title) in zip(axes, panels):
        bits = rows.bits.to_numpy(float)
        colors = [
            FLOAT_COLOR if d.startswith("float") else BIT_COLORS.get(int(b), "black")
            for d, b in zip(dtypes, bits)
        ]
        y = np.arange(len(rows))
        ax.barh(y, bits, color=colors)
        for i, (b, d, s) in enumerate(zip(bits, dtypes, scales)):
            ax.text(b + 0.5, i, d + (f", scale {s:.3g}" if s == s else ""), va="center", fontsize=7)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set(xlabel="bits", xlim=(0, 52), xticks=[8, 16, 32], title=title)
    return fig


def error_over_time(steps, title: str = "") -> Figure:
    """The deployed LSTM's output error per time step against its float reference, in output
    levels: one line per (label, LSTM layer) of `steps` (an `error_over_time` table, or {label:
    table}).

    Returns the Figure: 1 panel, x the time step (1 = first), y rmse/scale (log when the largest
    value passes 50 times rounding alone); the dashed line is rounding alone (1/sqrt(12))."""
    tables = steps if isinstance(steps, dict) else {"": steps}
    fig, (ax,) = figure(1, width=6.5, height=3.2)
    for label, table in tables.items():
        for layer, rows in table.groupby("layer", sort=False):
            ax.plot(rows.step, rows["rmse/scale"], marker="o", label=f"{label} {layer}".strip())
    ax.axhline(ROUNDING_ONLY, color="black", ls="--", lw=0.8, label="rounding only (0.289)")
    values = pd.concat([t["rmse/scale"] for t in tables.values()]).to_numpy(float)
    if values.size and np.nanmax(values) > 50 * ROUNDING_ONLY:
        ax.set_yscale("log")
    ax.set(
        xlabel="time step",
        ylabel="rmse / output scale (levels)",
        title=title or "the LSTM output's error, step by step (accumulated view)",
    )
    ax.legend(fontsize=8)
    return fig
