"""Figures of the pruning and clustering studies: what each stage keeps per layer in the deployed
files, and what it gains in gzip size against what it costs in accuracy. Each function takes a
study's tidy table (`qlab.studies.pruning`, `qlab.studies.clustering`: one row per model, setting,
seed, stage, file and layer) and draws the median over seeds with whiskers from min to max.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qlab.plots.figure import figure

ALL = "(all)"  # the whole-file rows of the study tables (`qlab.studies.pruning.ALL`)
PRUNING_COLORS = {
    ("pruned", "float32"): "tab:blue",
    ("pruned", "int8"): "tab:blue",
    ("qat", "int8"): "tab:orange",
    ("pqat", "int8"): "tab:green",
}
CLUSTERING_COLORS = {
    ("clustered", "float32"): "tab:blue",
    ("clustered", "int8"): "tab:orange",
    ("cqat", "keras"): "tab:green",
    ("cqat", "int8"): "tab:red",
    ("qat", "int8"): "tab:purple",
}
"""One colour per (stage, file) in both figures of a study; float32 files are dashed lines."""


def _spread(part: pd.DataFrame, keys: list[str], value: str, scale: float) -> pd.DataFrame:
    """Median, min and max of `value` × `scale` over seeds, per `keys`."""
    grouped = (part.assign(v=part[value] * scale)).groupby(keys, sort=False).v
    return pd.DataFrame({"median": grouped.median(), "low": grouped.min(), "high": grouped.max()})


def _present(rows: pd.DataFrame, series: list) -> list:
    """The (stage, file, label) of `series` that `rows` has rows for (a study may skip a stage)."""
    have = set(zip(rows.stage, rows.file))
    return [(stage, kind, label) for stage, kind, label in series if (stage, kind) in have]


def _bars(
    ax,
    part: pd.DataFrame,
    series: list,
    value: str,
    colors: dict,
    scale: float = 1.0,
    marker: str | None = None,
) -> None:
    """One group of bars per layer (file order), one bar per (stage, file, label) of `series`; a
    black tick at the median of `marker` (another column) on each bar when given."""
    rows = part[part.layer != ALL]
    layers = list(dict.fromkeys(rows[rows.file != "keras"].layer)) or list(
        dict.fromkeys(rows.layer)
    )
    series = _present(rows, series)
    width = 0.8 / max(len(series), 1)
    for j, (stage, kind, label) in enumerate(series):
        sub = rows[(rows.stage == stage) & (rows.file == kind)]
        stats = _spread(sub, ["layer"], value, scale).reindex(layers)
        x = np.arange(len(layers)) + (j - (len(series) - 1) / 2) * width
        err = np.vstack([stats["median"] - stats.low, stats.high - stats["median"]])
        ax.bar(
            x,
            stats["median"],
            width,
            yerr=np.nan_to_num(err),
            capsize=2,
            label=label,
            color=colors[stage, kind],
        )
        if marker is not None:
            ticks = _spread(sub, ["layer"], marker, scale).reindex(layers)["median"]
            ax.scatter(
                x,
                ticks,
                marker="_",
                color="black",
                s=60,
                zorder=3,
                label="most in one output channel" if j == 0 else None,
            )
    ax.set_xticks(range(len(layers)), layers, fontsize=8, rotation=30)


def _lines(
    ax,
    part: pd.DataFrame,
    series: list,
    value: str,
    scale: float,
    colors: dict,
    baseline: tuple | None = None,
) -> None:
    """Median (with min–max whiskers) of `value` × `scale` against the setting, one line per
    (stage, file, label) of `series`, from the whole-file rows; `baseline` (stage, file, label) is
    drawn as a dashed horizontal line at its median."""
    whole = part[part.layer == ALL]
    series = _present(whole, series)
    for (stage, kind, label), marker in zip(
        series, "osD^v"
    ):  # markers tell apart lines that overlap
        stats = _spread(
            whole[(whole.stage == stage) & (whole.file == kind)], ["setting"], value, scale
        ).sort_index()
        ax.errorbar(
            stats.index,
            stats["median"],
            yerr=[stats["median"] - stats.low, stats.high - stats["median"]],
            marker=marker,
            capsize=3,
            label=label,
            alpha=0.85,
            color=colors[stage, kind],
            ls="--" if kind == "float32" else "-",
        )
    if baseline is not None:
        stage, kind, label = baseline
        level = (whole[(whole.stage == stage) & (whole.file == kind)][value] * scale).median()
        ax.axhline(level, color="gray", ls="--", lw=1, label=label)
    ax.set_xticks(sorted(whole.setting.unique()))


def pruning_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The pruning study's figures, two per model, from `qlab.studies.pruning`'s rows.

    - `pruning_layers_<model>`: one panel per target sparsity; per layer, the percentage of zero
      weights in the int8 file of the pruned model, after plain QAT and after PQAT; the dashed line
      is the target.
    - `pruning_size_<model>`: against the target sparsity, the gzip size (KB) of each file and the
      LiteRT accuracy (%) of each int8 file; dashed: the unpruned model's int8 file.

    Returns {file stem: Figure}."""
    found = {}
    for name, part in table.groupby("model", sort=False):
        settings = sorted(part.setting.unique())
        fig, axes = figure(len(settings), width=4.6, height=3.4)
        for ax, setting in zip(axes, settings):
            _bars(
                ax,
                part[part.setting == setting],
                [
                    ("pruned", "int8", "pruned"),
                    ("qat", "int8", "plain QAT"),
                    ("pqat", "int8", "PQAT"),
                ],
                "sparsity",
                PRUNING_COLORS,
                100,
            )
            ax.axhline(100 * setting, color="gray", ls="--", lw=1)
            ax.set(
                ylim=(0, 100),
                ylabel="zero weights in the int8 file, %",
                title=f"{name}, target {100 * setting:g} %",
            )
        axes[0].legend(fontsize=7)
        found[f"pruning_layers_{name}"] = fig
        fig, (size, accuracy) = figure(2, width=4.8, height=3.4)
        _lines(
            size,
            part,
            [
                ("pruned", "float32", "pruned, float32"),
                ("pruned", "int8", "pruned, int8"),
                ("qat", "int8", "plain QAT, int8"),
                ("pqat", "int8", "PQAT, int8"),
            ],
            "gzip_bytes",
            1 / 1024,
            PRUNING_COLORS,
            ("float", "int8", "unpruned, int8"),
        )
        size.set(xlabel="target sparsity", ylabel="gzip size, KB", title=f"{name}: gzip size")
        _lines(
            accuracy,
            part,
            [("pruned", "int8", "pruned"), ("qat", "int8", "plain QAT"), ("pqat", "int8", "PQAT")],
            "accuracy",
            100,
            PRUNING_COLORS,
            ("float", "int8", "unpruned"),
        )
        accuracy.set(
            xlabel="target sparsity", ylabel="LiteRT accuracy, %", title=f"{name}: int8 accuracy"
        )
        size.legend(fontsize=7)
        accuracy.legend(fontsize=7)
        found[f"pruning_size_{name}"] = fig
    return found


def clustering_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The clustering study's figures, two per model, from `qlab.studies.clustering`'s rows.

    - `clustering_layers_<model>`: one panel per cluster count, log scale; per layer, the distinct
      values of the clustered model's float32 file and int8 file, of the CQAT model's kernels
      (before int8 rounding) and int8 file, and of plain QAT's int8 file where the table has a `qat`
      stage (notebook 10's control); a black tick marks the most any one output channel holds; the
      dashed line is the cluster count.
    - `clustering_size_<model>`: against the cluster count, the gzip size (KB) of each file and
      the LiteRT accuracy (%) of each int8 file; dashed: the unclustered model's int8 file.

    Returns {file stem: Figure}."""
    found = {}
    for name, part in table.groupby("model", sort=False):
        settings = sorted(part.setting.unique())
        fig, axes = figure(len(settings), width=5.2, height=3.6)
        for ax, setting in zip(axes, settings):
            _bars(
                ax,
                part[part.setting == setting],
                [
                    ("clustered", "float32", "clustered, float32"),
                    ("clustered", "int8", "clustered, int8"),
                    ("cqat", "keras", "CQAT kernels"),
                    ("cqat", "int8", "CQAT, int8"),
                    ("qat", "int8", "plain QAT, int8"),
                ],
                "unique",
                CLUSTERING_COLORS,
                marker="unique_per_channel",
            )
            ax.axhline(setting, color="gray", ls="--", lw=1)
            ax.set_yscale("log")
            ax.set(ylabel="distinct values (int8: integers)", title=f"{name}, {setting:g} clusters")
        axes[0].legend(fontsize=6)
        found[f"clustering_layers_{name}"] = fig
        fig, (size, accuracy) = figure(2, width=4.8, height=3.4)
        _lines(
            size,
            part,
            [
                ("clustered", "float32", "clustered, float32"),
                ("clustered", "int8", "clustered, int8"),
                ("qat", "int8", "plain QAT, int8"),
                ("cqat", "int8", "CQAT, int8"),
            ],
            "gzip_bytes",
            1 / 1024,
            CLUSTERING_COLORS,
            ("float", "int8", "unclustered, int8"),
        )
        size.set(xlabel="clusters", ylabel="gzip size, KB", title=f"{name}: gzip size")
        _lines(
            accuracy,
            part,
            [
                ("clustered", "int8", "clustered"),
                ("qat", "int8", "plain QAT"),
                ("cqat", "int8", "CQAT"),
            ],
            "accuracy",
            100,
            CLUSTERING_COLORS,
            ("float", "int8", "unclustered"),
        )
        accuracy.set(xlabel="clusters", ylabel="LiteRT accuracy, %", title=f"{name}: int8 accuracy")
        size.legend(fontsize=7)
        accuracy.legend(fontsize=7)
        found[f"clustering_size_{name}"] = fig
    return found
