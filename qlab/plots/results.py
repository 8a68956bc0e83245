"""Figures of the results: the data, training curves, confusion matrices, the published table
beside ours, output error, differences from a reference. Each returns a matplotlib Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.plots.figure import figure


def digits(x: np.ndarray, labels, predictions=None, n: int = 16) -> Figure:
    """The first `n` images of `x` ((N, 8, 8[, 1]), pixels 0..16, drawn 0 white to 16 black), each
    titled with its label, or "label→prediction" in red where the two differ.

    Returns the Figure: min(n, len(x)) panels in one row, one inch wide each."""
    n = min(n, len(x))
    fig, axes = figure(n, width=1.0, height=1.4)
    for i, ax in enumerate(axes):
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
    """Loss and accuracy (%) per epoch of a Keras `History.history` dict, training split
    (circles) beside test split (squares, when it has val_loss).

    Returns the Figure: 2 panels side by side, loss then accuracy."""
    fig, (loss_ax, acc_ax) = figure(2, width=4, height=3)
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
    """Confusion matrix: rows are true digits, columns predicted, nonzero cells labelled with their
    count; the default title says how many images are right.

    Returns the Figure: 1 panel with its colour bar."""
    counts = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    fig, (ax,) = figure(1, width=4.2, height=3.8)
    im = ax.imshow(counts, cmap="Blues")
    for (i, j), c in np.ndenumerate(counts):
        if c:
            ax.text(
                j,
                i,
                str(c),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if c > counts.max() / 2 else "black",
            )
    ax.set(
        xlabel="predicted",
        ylabel="true",
        xticks=range(num_classes),
        yticks=range(num_classes),
        title=title or f"{np.trace(counts)} of {counts.sum()} right",
    )
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def measured_vs_published(comparison: pd.DataFrame) -> Figure:
    """Each mode's accuracy (%), latency and size over float32's: the article's value (gray)
    beside ours (green), from `qlab.infra.tables.comparison`; a line at 1 on the latency panel.

    Returns the Figure: 3 panels side by side."""
    fig, axes = figure(3, width=10 / 3, height=3.4)
    x = np.arange(len(comparison))
    panels = [
        ("accuracy", "accuracy (%)"),
        ("latency_x", "latency / float32"),
        ("size_x", "size / float32"),
    ]
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
    """|p_mode − p_float32| over all test outputs, one box per mode ({mode: probabilities minus
    float32's}), log y; differences under 1e-9, zeros included, are drawn at 1e-9.

    Returns the Figure: 1 panel."""
    fig, (ax,) = figure(1, width=7, height=3.2)
    names = list(errors)
    data = [np.maximum(np.abs(errors[n]).ravel(), 1e-9) for n in names]
    ax.boxplot(data, tick_labels=names, showfliers=True, flierprops={"markersize": 2})
    ax.set_yscale("log")
    ax.set(
        ylabel="|probability − float32's|", title="how far each mode's outputs move from float32"
    )
    ax.tick_params(axis="x", rotation=30)
    return fig


def difference_bars(
    table: pd.DataFrame,
    label: str,
    value: str,
    step: float,
    title: str = "",
    unit: str = "pp",
    step_label: str = "test images",
) -> Figure:
    """Horizontal bars of the `value` column (differences from a reference, e.g. accuracy minus a
    baseline's in pp), one per row named by `label`, green above 0 and red below, labelled
    "+0.44 pp (+2 test images)", with a dotted line at every multiple of `step` (e.g. one test
    image: 100 / test images pp). The x axis reaches at least two steps, so a one-step difference
    looks as small as it is.

    Returns:
        The Figure: 1 panel, 8 inches wide, 0.45 inch high per row.

    Raises:
        ValueError: a step that is not positive."""
    if not step > 0:
        raise ValueError(f"step must be positive, got {step!r}")
    values = table[value].to_numpy(float)
    fig, (ax,) = figure(1, width=8, height=0.45 * len(table) + 1.2)
    bars = ax.barh(range(len(table)), values, color=np.where(values >= 0, "tab:green", "tab:red"))
    one = step_label[:-1] if step_label.endswith("s") else step_label
    ax.bar_label(
        bars,
        [
            f"{v:+.2f} {unit} "
            f"({round(v / step):+d} {one if abs(round(v / step)) == 1 else step_label})"
            for v in values
        ],
        fontsize=8,
        padding=3,
    )
    ax.set_yticks(range(len(table)), table[label])
    ax.invert_yaxis()
    steps = int(np.ceil(max(np.nanmax(np.abs(values)) / step, 1.0))) + 1
    for k in range(-steps, steps + 1):
        ax.axvline(k * step, color="gray", ls=":", lw=0.7, zorder=0)
    ax.axvline(0.0, color="black", lw=0.9)
    ax.set_xlim(-(steps + 1.5) * step, (steps + 1.5) * step)
    ax.set(
        xlabel=f"{value}; dotted lines {step:.3g} {unit} apart (one of the {step_label})",
        title=title,
    )
    return fig
