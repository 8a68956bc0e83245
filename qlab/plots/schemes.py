"""Figures of the custom-scheme studies: the bits curve (`qlab.studies.bits`) and the quant delay
curve (`qlab.studies.delay`), each drawn from the study's per-seed table as the median over seeds
with its min–max spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.plots.figure import CLIP, DEPLOYED, FLOAT, figure

METHOD_STYLE = {
    "qat": ("QAT fine-tuned (Keras fake-quant)", DEPLOYED, "o-"),
    "post_training": ("post-training fake-quant (Keras)", FLOAT, "s--"),
}
DEPLOYED_STYLE = {
    "qat": ("QAT, integer_only .tflite (LiteRT)", DEPLOYED, "*", 0.12),
    "post_training": ("post-training, integer_only .tflite (LiteRT)", FLOAT, "P", -0.12),
    "aeq_wi4_afp32": (
        "float model, int4 weights by ai-edge-quantizer (LiteRT)",
        "tab:green",
        "D",
        -0.12,
    ),
}
"""Deployed files: label, colour, marker, and an x offset (bits) so that markers do not hide each
other."""


def _spread(part: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Median, min and max of `y` (a fraction, drawn in %) over seeds, per value of `x`."""
    frame = part.assign(pct=100 * part[y]).dropna(subset=["pct"])
    return frame.groupby(x).pct.agg(["median", "min", "max"]).sort_index()


def _line(ax, stats: pd.DataFrame, label: str, color: str, style: str) -> None:
    """A median line with its min–max band."""
    ax.plot(stats.index, stats["median"], style, color=color, label=label)
    ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.15, lw=0)


def _kept(rows: pd.DataFrame, x: str) -> str:
    """What the QAT files of one width kept, for the label under its tick: the weights' storage
    type (and values, int8) on the weights panel, the activation levels on the other; "no file"
    where the conversion failed."""
    if rows.deployed_accuracy.isna().all():
        return "no file"
    if x == "activation_bits":
        return f"{rows.file_activation_levels.median():.0f} lv"
    kind, values = rows.file_weights.iloc[0], rows.file_weight_values.median()
    return kind if np.isnan(values) else f"{kind}\n{values:.0f} v"


def bits_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The bits curve: test accuracy against weight bits (activations at 8) and against activation
    bits (weights at 8), one row of two panels per model.

    Lines are the Keras fake-quant models, QAT fine-tuned and post-training, median over seeds
    with a min–max band; markers are the files deployed from them and run on LiteRT (every QAT
    model, the post-training one at 8/8, ai-edge-quantizer's int4-weight file of the float model),
    nudged sideways so that they do not hide each other; the dotted gray line is the float model's
    median. Under each width, what the converter kept: the QAT file's weight storage ("INT4", or
    "INT8" with the most distinct values a tensor holds, "v"), or the levels its activations span
    ("lv": 256 is 8 bits whatever the Keras model simulated). Widths below 8 are shaded: the Keras
    model is a simulation there, and the figure says how far the file follows it.

    Args:
        table: `qlab.studies.bits`' per-seed rows (model, weight_bits, activation_bits, method,
            keras_accuracy, deployed_accuracy, float_accuracy as fractions, file_weights,
            file_weight_values, file_activation_levels).

    Returns:
        {"bits_curve": the Figure}: 2 panels per model.
    """
    names = list(dict.fromkeys(table.model))
    fig, axes = figure(2 * max(len(names), 1), ncols=2, width=5.2, height=3.6)
    for row, name in enumerate(names):
        part = table[table.model == name]
        for col, (x, other) in enumerate(
            (("weight_bits", "activation_bits"), ("activation_bits", "weight_bits"))
        ):
            ax = axes[2 * row + col]
            sweep = part[part[other] == 8]
            for method, (label, color, style) in METHOD_STYLE.items():
                stats = _spread(sweep[sweep.method == method], x, "keras_accuracy")
                if len(stats):
                    _line(ax, stats, label, color, style)
            for method, (label, color, marker, shift) in DEPLOYED_STYLE.items():
                stats = _spread(sweep[sweep.method == method], x, "deployed_accuracy")
                if len(stats):
                    ax.errorbar(
                        stats.index + shift,
                        stats["median"],
                        [stats["median"] - stats["min"], stats["max"] - stats["median"]],
                        fmt=marker,
                        color=color,
                        ms=8,
                        capsize=3,
                        label=label,
                        zorder=3,
                    )
            ax.axhline(
                100 * part.float_accuracy.median(),
                color="gray",
                ls=":",
                lw=1,
                label="float model (Keras)",
            )
            widths = sorted(sweep[x].unique())
            if widths and widths[0] < 8:
                ax.axvspan(widths[0] - 0.5, 7.5, color=CLIP, alpha=0.06, lw=0)
            qat = sweep[sweep.method == "qat"]
            for width in widths:
                ax.text(
                    width,
                    0.02,
                    _kept(qat[qat[x] == width], x),
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="bottom",
                    fontsize=6.5,
                    color="dimgray",
                )
            ax.set(
                xlabel=f"{x.replace('_', ' ')} ({other.replace('_', ' ')} at 8)",
                ylabel="test accuracy (%)",
                title=f"{name}: {x.split('_')[0]}s",
                xticks=widths,
            )
            ax.grid(alpha=0.3)
    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=3, fontsize=7)
    fig.suptitle(
        "Accuracy against bit width, median and min–max over seeds. Shaded: below 8 bits, the "
        "Keras model simulates a grid the int8 file only partly keeps\n(under each width: the QAT "
        "file's weight storage, v = most values in a tensor, or its activation levels, lv)",
        fontsize=8.5,
    )
    return {"bits_curve": fig}


def delay_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The quant delay curve: int8 accuracy of the deployed file against the steps left for QAT
    after the delay (total steps − quant_delay, on a symlog axis, so the last few steps show),
    and the mean lower end of the activation ranges, per model.

    Left panel: the integer_only file on LiteRT and the Keras QAT model (median, min–max band over
    seeds), with the float model and its post-training int8 file as dotted medians. Right panel:
    the activation ranges' mean lower end (real units), which tfmot starts at -6.

    Args:
        table: `qlab.studies.delay`'s per-seed rows (model, qat_steps, total_steps,
            int8_accuracy, keras_accuracy, float_accuracy, ptq_int8_accuracy, activation_low).

    Returns:
        {"delay_curve": the Figure}: 2 panels per model.
    """
    names = list(dict.fromkeys(table.model))
    fig, axes = figure(2 * max(len(names), 1), ncols=2, width=5.2, height=3.4)
    for row, name in enumerate(names):
        part = table[table.model == name]
        ax, lows = axes[2 * row], axes[2 * row + 1]
        _line(
            ax,
            _spread(part, "qat_steps", "int8_accuracy"),
            "QAT, integer_only .tflite (LiteRT)",
            DEPLOYED,
            "o-",
        )
        _line(
            ax, _spread(part, "qat_steps", "keras_accuracy"), "QAT (Keras fake-quant)", FLOAT, "s--"
        )
        for column, label, color in (
            ("float_accuracy", "float model (Keras)", "gray"),
            ("ptq_int8_accuracy", "post-training integer_only", "tab:green"),
        ):
            ax.axhline(100 * part[column].median(), color=color, ls=":", lw=1.2, label=label)
        steps = int(part.total_steps.iloc[0])
        ax.set(
            xlabel=f"QAT steps after the delay (quant_delay = {steps} − steps)",
            ylabel="test accuracy (%)",
            title=f"{name}: int8 accuracy against the steps left for QAT",
        )
        ax.legend(fontsize=7, loc="lower right")
        stats = part.groupby("qat_steps").activation_low.agg(["median", "min", "max"]).sort_index()
        lows.plot(stats.index, stats["median"], "o-", color=CLIP)
        lows.fill_between(stats.index, stats["min"], stats["max"], color=CLIP, alpha=0.15, lw=0)
        lows.axhline(-6, color="gray", ls=":", lw=1)
        lows.set(
            xlabel="QAT steps after the delay",
            ylabel="mean range minimum (real units)",
            title="activation ranges' lower end (tfmot starts at −6)",
            ylim=(-6.5, 0.2),
        )
        for a in (ax, lows):
            a.grid(alpha=0.3)
            a.set_xscale("symlog", linthresh=1)
            a.set_xlim(-0.4, 1.4 * part.qat_steps.max())
            a.set_xticks(np.unique(part.qat_steps), [str(v) for v in np.unique(part.qat_steps)])
            a.tick_params(axis="x", labelsize=7, labelrotation=90)
    return {"delay_curve": fig}
