"""Figures of the results: the data, training curves, confusion matrices, the published table beside
ours, output error, differences from a reference. Each returns a matplotlib Figure.

The figures take the digits arrays of `qlab.training.data.load` (`digits`, `confusion`), a Keras
`History.history` dict (`training_curves`), the table of `qlab.infra.tables.comparison` (`measured_vs_published`), each mode's
difference from float32's output probabilities (`output_error`), and any table with a label
column and a number column as differences from a reference (`difference_bars`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.plots.figure import figure


def digits(x: np.ndarray, labels, predictions=None, n: int = 16) -> Figure:
    """A row of images with their labels (and predictions, red where wrong).

    One panel per image, the first `n` of `x` in order, drawn in gray with the digits' fixed pixel
    scale (0 white, 16 black) and no axes. Each title is the label, or "label→prediction" when
    `predictions` is given, in red where the two differ.

    Args:
        x: images of shape (N, 8, 8, 1) or (N, 8, 8), pixels 0..16, e.g. `qlab.training.data.load().x_test`.
        labels: the true digit of each image, e.g. `y_test`.
        predictions: the predicted digit of each image, in the same order, e.g.
            `Runtime(tflite).predict(x).argmax(axis=1)`; None titles the images with labels alone.
        n: how many images to show; at most len(x).

    Returns:
        The matplotlib Figure: min(n, len(x)) panels in one row, one inch wide each.
    """
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
    """Loss and accuracy per epoch, training split beside test split (Keras history dict).

    Two panels against the epoch (1, 2, ...): the cross-entropy loss, and the accuracy in %;
    the training split as circles, the test split as squares when the history has it.

    Args:
        history: a Keras `History.history` dict (e.g. `model.history.history` after
            `qlab.training.fit.train_float`); reads loss and accuracy (a fraction, drawn in %), and
            val_loss and val_accuracy when val_loss is there.
        title: the figure's title; none when empty.

    Returns:
        The matplotlib Figure: 2 panels side by side, loss then accuracy.
    """
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
    """Confusion matrix: rows are true digits, columns predicted; off-diagonal cells are errors.

    One panel: how many images of each true class (row) went to each predicted class (column),
    in blue shades (darker: more; scale in the colour bar), every nonzero cell labelled with its
    count.

    Args:
        y_true: the true labels, integers 0..num_classes − 1, e.g. `qlab.training.data.load().y_test`.
        y_pred: the predicted labels, same length and order, e.g. the argmax of
            `Runtime(tflite).predict(x_test)`.
        num_classes: the number of rows and columns (10 digits).
        title: the panel's title; by default how many of all the images are right.

    Returns:
        The matplotlib Figure: 1 panel with its colour bar.
    """
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
    """Each mode's size and latency relative to float32: the article's ratio beside ours.

    Three panels, one pair of bars per mode (x), the published value gray and ours green, each
    bar labelled: accuracy in %, latency over float32's, and size over float32's. On the latency
    panel a black line marks 1, as fast as float32.

    Args:
        comparison: from `qlab.infra.tables.comparison`, one row per mode; reads mode, accuracy and
            accuracy_pub (%), latency_x and latency_x_pub, size_x and size_x_pub (ratios to
            float32).

    Returns:
        The matplotlib Figure: 3 panels side by side.
    """
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
    """Distribution of |p_mode - p_float32| over all test outputs, one box per mode (log scale).

    One panel: for each mode a box plot (median, quartiles, whiskers at 1.5 × the interquartile
    range, the rest as small dots) of how far each output probability, every image and class,
    lies from float32's. Differences under 1e-9, exact zeros included, are drawn at 1e-9.

    Args:
        errors: {mode name: that mode's output probabilities minus float32's, any shape}, e.g.
            `Runtime(tflite).predict(x_test) - reference` per mode as notebook 02 builds it;
            the sign is dropped here.

    Returns:
        The matplotlib Figure: 1 panel.
    """
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
    """Horizontal bars of differences from a reference (e.g. accuracy minus a baseline's, in percentage
    points) around a zero line, with a dotted line at every multiple of `step` (e.g. one test image).

    One panel: one bar per row of `table`, the first on top, green where the difference is positive and
    red where negative, labelled "+0.44 pp (+2 test images)"; a black line at 0 and a dotted gray line
    at every multiple of `step`. The x axis is symmetric about 0 and reaches at least two steps, so a
    one-step difference looks as small as it is.

    Args:
        table: any DataFrame, one bar per row; reads the columns named by `label` and `value`.
        label: the column that names the bars.
        value: the column of differences to draw; also the x axis label.
        step: the size of one step in the value's unit (one test image: 100 / number of test images pp).
        title: the panel's title.
        unit: the values' unit, for the labels.
        step_label: what a step counts, for the labels.

    Returns:
        The matplotlib Figure: 1 panel, 8 inches wide, 0.45 inch high per row.

    Raises:
        ValueError: a step that is not positive.
    """
    if not step > 0:
        raise ValueError(f"step must be positive, got {step!r}")
    values = table[value].to_numpy(float)
    fig, (ax,) = figure(1, width=8, height=0.45 * len(table) + 1.2)
    bars = ax.barh(range(len(table)), values, color=np.where(values >= 0, "tab:green", "tab:red"))
    one = step_label[:-1] if step_label.endswith("s") else step_label
    ax.bar_label(
        bars,
        [
            f"{v:+.2f} {unit} ({round(v / step):+d} {one if abs(round(v / step)) == 1 else step_label})"
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
