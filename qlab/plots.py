"""One function per figure kind. Each returns a matplotlib Figure; no global style changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _figure(width: float = 7.0, height: float = 3.2, ncols: int = 1):
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def digits(x: np.ndarray, labels, predictions=None, n: int = 16) -> Figure:
    """A row of images with their labels (and predictions, red where wrong)."""
    n = min(n, len(x))
    fig, axes = _figure(1.0 * n, 1.4, n)
    for i, ax in enumerate(np.atleast_1d(axes)):
        ax.imshow(x[i].squeeze(), cmap="gray_r", vmin=0, vmax=16)
        title = f"{labels[i]}"
        color = "black"
        if predictions is not None:
            title += f"→{predictions[i]}"
            color = "black" if predictions[i] == labels[i] else "red"
        ax.set_title(title, fontsize=9, color=color)
        ax.set_axis_off()
    return fig


def training_curves(history: dict, title: str = "") -> Figure:
    """Loss and accuracy per epoch, training split beside test split (Keras history dict)."""
    fig, (loss_ax, acc_ax) = _figure(8, 3, 2)
    epochs = np.arange(1, len(history["loss"]) + 1)
    loss_ax.plot(epochs, history["loss"], "o-", label="train")
    acc_ax.plot(epochs, 100 * np.array(history["accuracy"]), "o-", label="train")
    if "val_loss" in history:
        loss_ax.plot(epochs, history["val_loss"], "s-", label="test")
        acc_ax.plot(epochs, 100 * np.array(history["val_accuracy"]), "s-", label="test")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def confusion(y_true, y_pred, num_classes: int = 10, title: str = "") -> Figure:
    """Confusion matrix: rows are true digits, columns predicted; off-diagonal cells are errors."""
    counts = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    fig, ax = _figure(4.2, 3.8)
    im = ax.imshow(counts, cmap="Blues")
    for (i, j), c in np.ndenumerate(counts):
        if c:
            ax.text(j, i, str(c), ha="center", va="center", fontsize=7,
                    color="white" if c > counts.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", xticks=range(num_classes), yticks=range(num_classes),
           title=title or f"{np.trace(counts)} of {counts.sum()} right")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def results_bars(results: pd.DataFrame) -> Figure:
    """Accuracy, size and median latency of every measured model, side by side."""
    labels = [f"{t}\n{m}" if t != "float" else m for t, m in zip(results.training, results["mode"])]
    fig, axes = _figure(12, 3.6, 3)
    panels = [
        (100 * results.accuracy, "accuracy (%)", "accuracy on 450 test images"),
        (results.size_bytes / 1024, "size (KB)", "size of the .tflite"),
        (results.latency_us, "µs per image", "median latency, 1 thread"),
    ]
    colors = ["tab:blue" if t == "float" else "tab:orange" for t in results.training]
    for ax, (values, ylabel, title) in zip(axes, panels):
        bars = ax.bar(range(len(values)), values, color=colors)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(values)), labels, rotation=60, ha="right", fontsize=8)
        ax.set(ylabel=ylabel, title=title)
        if ylabel.startswith("accuracy"):
            ax.set_ylim(max(0, values.min() - 5), 100)
    return fig


def measured_vs_published(comparison: pd.DataFrame) -> Figure:
    """Each mode's size and latency relative to float32: the article's ratio beside ours."""
    fig, axes = _figure(10, 3.4, 3)
    x = np.arange(len(comparison))
    panels = [("accuracy", "accuracy (%)"), ("latency_x", "latency / float32"), ("size_x", "size / float32")]
    for ax, (column, ylabel) in zip(axes, panels):
        pub = ax.bar(x - 0.2, comparison[f"{column}_pub"], 0.4, label="published", color="tab:gray")
        ours = ax.bar(x + 0.2, comparison[column], 0.4, label="measured here", color="tab:green")
        for bars in (pub, ours):
            ax.bar_label(bars, fmt="%.2g" if column != "accuracy" else "%.1f", fontsize=7)
        ax.set_xticks(x, comparison["mode"], rotation=30, ha="right", fontsize=8)
        ax.set(ylabel=ylabel)
        if column == "latency_x":
            ax.axhline(1, color="black", lw=0.8)
    axes[0].legend(fontsize=8, loc="lower left")
    return fig


def output_error(errors: dict[str, np.ndarray]) -> Figure:
    """Distribution of |p_mode - p_float32| over all test outputs, one box per mode (log scale)."""
    fig, ax = _figure(7, 3.2)
    names = list(errors)
    data = [np.maximum(np.abs(errors[n]).ravel(), 1e-9) for n in names]
    ax.boxplot(data, tick_labels=names, showfliers=True, flierprops={"markersize": 2})
    ax.set_yscale("log")
    ax.set(ylabel="|probability − float32's|", title="how far each mode's outputs move from float32")
    ax.tick_params(axis="x", rotation=30)
    return fig


def comparison_bars(table: pd.DataFrame, label: str, value: str, title: str = "",
                    reference: float | None = None) -> Figure:
    """Horizontal bars of one column, e.g. accuracy per training variant, with a reference line."""
    fig, ax = _figure(7, 0.45 * len(table) + 1)
    bars = ax.barh(range(len(table)), table[value], color="tab:purple")
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_yticks(range(len(table)), table[label])
    ax.invert_yaxis()
    if reference is not None:
        ax.axvline(reference, color="black", lw=0.8, ls="--")
    lo = min(table[value].min(), reference if reference is not None else np.inf)
    ax.set_xlim(lo - 2, min(100.5, table[value].max() + 1))
    ax.set(xlabel=value, title=title)
    return fig


def bench_ratios(bench: pd.DataFrame, training: str = "float") -> Figure:
    """Each mode's latency over float32's on the same kernels and threads, one panel per batch
    size; whiskers span p10–p90 of the per-round ratios. Log scale: 1 means as fast as float32."""
    batches = sorted(bench.batch.unique())
    fig, axes = _figure(6 * len(batches), 3.8, len(batches))
    axes = np.atleast_1d(axes)
    sub = bench[bench.training == training]
    modes = [m for m in dict.fromkeys(sub["mode"]) if m != "float32"]
    for ax, batch in zip(axes, batches):
        part = sub[sub.batch == batch]
        settings = list(dict.fromkeys(zip(part.kernels, part.threads)))
        width = 0.8 / len(modes)
        for j, mode in enumerate(modes):
            rows = [part[(part.kernels == k) & (part.threads == t) & (part["mode"] == mode)].iloc[0]
                    for k, t in settings]
            x = np.arange(len(settings)) + (j - (len(modes) - 1) / 2) * width
            med = np.array([r.ratio_vs_float32 for r in rows])
            err = np.array([[r.ratio_vs_float32 - r.ratio_p10 for r in rows],
                            [r.ratio_p90 - r.ratio_vs_float32 for r in rows]])
            ax.bar(x, med, width, yerr=err, label=mode, capsize=2)
        ax.axhline(1, color="black", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(settings)), [f"{k}\n{t} thread{'s' if t > 1 else ''}" for k, t in settings],
                      fontsize=8)
        ax.set(ylabel="latency / float32's", title=f"batch {batch}")
    axes[0].legend(fontsize=7, ncols=2)
    return fig


def size_breakdown(sizes: pd.DataFrame) -> Figure:
    """Stacked bytes of each part of every file, with the ideal size (parameters × bytes each)."""
    parts = [c for c in sizes.columns if c not in ("training", "mode", "size_bytes", "ideal_bytes", "size_vs_ideal")]
    labels = [f"{t}/{m}" if t != "float" else m for t, m in zip(sizes.training, sizes["mode"])]
    fig, ax = _figure(9, 3.8)
    bottom = np.zeros(len(sizes))
    for part in parts:
        values = sizes[part].to_numpy() / 1024
        ax.bar(range(len(sizes)), values, bottom=bottom, label=part)
        bottom += values
    ax.scatter(range(len(sizes)), sizes.ideal_bytes / 1024, marker="_", s=400, color="black", zorder=3,
               label="ideal (params × bytes)")
    ax.set_xticks(range(len(sizes)), labels, rotation=40, ha="right", fontsize=8)
    ax.set(ylabel="KB (1024 bytes)", title="where the bytes of each .tflite go")
    ax.legend(fontsize=7, ncols=2)
    return fig


def lsb_differences(tables: dict[str, pd.DataFrame], title: str = "") -> Figure:
    """Per layer, the share of int8 values two runs disagree on (log scale), labelled with the
    largest difference in LSB; one bar colour per comparison (tables from qlab.intmath.compare)."""
    fig, ax = _figure(8, 3.4)
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
    ax.set(ylabel="% of values that differ", title=title or "where two int8 runs disagree (label: max LSB)")
    ax.legend(fontsize=8)
    return fig
