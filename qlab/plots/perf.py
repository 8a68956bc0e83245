"""Figures of latency and size: ratios to float32 under each kernel choice, the CPU's peak MAC rate
per data type, and where the bytes of each file go. Each returns a matplotlib Figure; tables come
from `qlab.perf`: `bench_ratios` takes the table of `qlab.perf.bench.run`, `peak_rates` that of
`qlab.perf.work.peaks`, `size_breakdown` that of `qlab.perf.sizes.table`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.plots.figure import figure


def bench_ratios(bench: pd.DataFrame, training: str = "float") -> Figure:
    """Each mode's latency over float32's on the same kernels and threads, one panel per batch
    size; whiskers span p10–p90 of the per-round ratios. Log scale: 1 means as fast as float32.

    Each panel (batch sizes in increasing order) groups the bars by setting, kernels over thread
    count (x), one bar and colour per mode of the `training` models, float32 left out as the
    baseline. A bar's height is the median over rounds of the ratio to float/float32's latency in
    the same round; below the black line at 1 the mode is faster than float32.

    Args:
        bench: from `qlab.perf.bench.run` with float/float32 among the models, so that it has the
            ratio columns; reads training, mode, kernels, threads, batch, ratio_vs_float32,
            ratio_p10 and ratio_p90, and needs a row for every mode under every setting.
        training: which models to draw, "float" or "qat"; the ratios are always to float/float32.

    Returns:
        The matplotlib Figure: one panel per batch size, in one row.
    """
    batches = sorted(bench.batch.unique())
    fig, axes = figure(len(batches), width=6, height=3.8)
    sub = bench[bench.training == training]
    modes = [m for m in dict.fromkeys(sub["mode"]) if m != "float32"]
    for ax, batch in zip(axes, batches):
        part = sub[sub.batch == batch]
        settings = list(dict.fromkeys(zip(part.kernels, part.threads)))
        width = 0.8 / len(modes)
        for j, mode in enumerate(modes):
            rows = [
                part[(part.kernels == k) & (part.threads == t) & (part["mode"] == mode)].iloc[0]
                for k, t in settings
            ]
            x = np.arange(len(settings)) + (j - (len(modes) - 1) / 2) * width
            med = np.array([r.ratio_vs_float32 for r in rows])
            err = np.array(
                [
                    [r.ratio_vs_float32 - r.ratio_p10 for r in rows],
                    [r.ratio_p90 - r.ratio_vs_float32 for r in rows],
                ]
            )
            ax.bar(x, med, width, yerr=err, label=mode, capsize=2)
        ax.axhline(1, color="black", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(
            range(len(settings)),
            [f"{k}\n{t} thread{'s' if t > 1 else ''}" for k, t in settings],
            fontsize=8,
        )
        ax.set(ylabel="latency / float32's", title=f"batch {batch}")
    axes[0].legend(fontsize=7, ncols=2)
    return fig


def size_breakdown(sizes: pd.DataFrame) -> Figure:
    """Stacked bytes of each part of every file, with the ideal size (parameters × bytes each).

    One panel, one stacked bar per model (labelled "training/mode", or the mode alone for float
    training): the KB (1024 bytes) of each part of the .tflite, one colour per part in the
    table's column order, and a black dash at the ideal size, the parameter count times the
    bytes of the mode's weight type.

    Args:
        sizes: from `qlab.perf.sizes.table`, one row per model; reads training, mode and
            ideal_bytes, and stacks every other column but size_bytes and size_vs_ideal as a part
            in bytes (weights_<type>, biases, other_constants, quantization, names, metadata,
            structure).

    Returns:
        The matplotlib Figure: 1 panel.
    """
    parts = [
        c
        for c in sizes.columns
        if c not in ("training", "mode", "size_bytes", "ideal_bytes", "size_vs_ideal")
    ]
    labels = [f"{t}/{m}" if t != "float" else m for t, m in zip(sizes.training, sizes["mode"])]
    fig, (ax,) = figure(1, width=9, height=3.8)
    bottom = np.zeros(len(sizes))
    for part in parts:
        values = sizes[part].to_numpy() / 1024
        ax.bar(range(len(sizes)), values, bottom=bottom, label=part)
        bottom += values
    ax.scatter(
        range(len(sizes)),
        sizes.ideal_bytes / 1024,
        marker="_",
        s=400,
        color="black",
        zorder=3,
        label="ideal (params × bytes)",
    )
    ax.set_xticks(range(len(sizes)), labels, rotation=40, ha="right", fontsize=8)
    ax.set(ylabel="KB (1024 bytes)", title="where the bytes of each .tflite go")
    ax.legend(fontsize=7, ncols=2)
    return fig


def peak_rates(peaks: pd.DataFrame) -> Figure:
    """The MAC rate LiteRT reaches on each probe layer, float32 beside int8, one thread.

    One panel: a group of bars per (probe, kernels), one bar per data type (float32, int8), its
    height the median GMAC/s over the interleaved rounds and its whiskers their min–max; above
    each int8 bar, int8's rate over float32's (the median of the per-round ratios). The title
    names the CPU's int8 path when the table has it (`qlab.perf.cpu.columns`).

    Args:
        peaks: from `qlab.perf.work.peaks`; reads probe, kernels, dtype, gmacs, gmacs_min, gmacs_max
            and vs_float32, and int8_path if present.

    Returns:
        The matplotlib Figure: 1 panel.
    """
    fig, (ax,) = figure(1, width=7.5, height=3.6)
    groups = list(dict.fromkeys(zip(peaks.probe, peaks.kernels)))
    for j, dtype in enumerate(("float32", "int8")):
        rows = [
            peaks[(peaks.probe == p) & (peaks.kernels == k) & (peaks.dtype == dtype)].iloc[0]
            for p, k in groups
        ]
        x = np.arange(len(groups)) + (j - 0.5) * 0.4
        height = np.array([r.gmacs for r in rows])
        err = np.array(
            [[r.gmacs - r.gmacs_min for r in rows], [r.gmacs_max - r.gmacs for r in rows]]
        )
        ax.bar(x, height, 0.4, yerr=err, capsize=3, label=dtype)
        if dtype == "int8":
            for xi, r in zip(x, rows):
                ax.annotate(
                    f"{r.vs_float32:.1f}×", (xi, r.gmacs_max), ha="center", va="bottom", fontsize=8
                )
    ax.set_xticks(range(len(groups)), [f"{p}\n{k}" for p, k in groups])
    path = (
        f" (int8 path: {', '.join(dict.fromkeys(peaks.int8_path))})"
        if "int8_path" in peaks.columns
        else ""
    )
    ax.set(ylabel="GMAC/s, 1 thread", title=f"peak MAC rate per data type on this CPU{path}")
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    return fig
