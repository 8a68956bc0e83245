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
    """Each mode's latency over float/float32's on the same kernels and threads, one panel per batch
    size: the median over rounds, whiskers p10–p90, log y (below the line at 1: faster than
    float32). `bench` is from `qlab.perf.bench.run` with float/float32 measured and a row for every
    mode under every setting; `training` picks the models drawn.

    Returns the Figure: one panel per batch size, in one row."""
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
    """Stacked KB of each part of every file (`qlab.perf.sizes.table`), with a dash at the ideal
    size (parameters × bytes of the mode's weight type).

    Returns the Figure: 1 panel."""
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
    """The MAC rate LiteRT reaches on each probe layer (`qlab.perf.work.peaks`), float32 beside
    int8, one thread: median GMAC/s over rounds with min–max whiskers, int8's ratio to float32
    above its bar, and the CPU's int8 path in the title when the table has it.

    Returns the Figure: 1 panel."""
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
