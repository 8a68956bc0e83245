"""Figures of the ai-edge-quantizer studies: the converter's modes beside AEQ's recipes, with AEQ's
`validate()` set against qlab's per-layer views (`aeq_figures`, from `qlab.studies.aeq_recipes`),
per-layer sensitivity ranked two ways (`sensitivity_figures`, `qlab.studies.sensitivity`) and the
mixed-precision search with its Pareto front (`mixed_precision_figures`,
`qlab.studies.mixed_precision`). Each reads the study's tidy per-seed table (as `measure` returns
it, or read back from the study's CSV) and draws medians with their min–max spread over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from qlab.plots.figure import CLIP, DEPLOYED, FLOAT, figure
from qlab.studies import aeq_recipes as aeq_study
from qlab.studies import mixed_precision as mp_study

ROUTE_COLORS = {"converter": FLOAT, "aeq": DEPLOYED}
"""The TFLite converter's modes in blue, ai-edge-quantizer's recipes in orange."""
UNIFORM_MARKERS = {"all_int8": "s", "all_int16": "^", "float32": "*"}
COLORS = {"uniform": FLOAT, "converter": "tab:green"}
"""The mixed-precision figure's markers: uniform configurations (by config), the converter's
modes (diamonds)."""
KB = 1024


def aeq_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The aeq study's figures, by file stem, from its per-seed rows
    (`qlab.studies.aeq_recipes.measure`).

    Returns:
        {"aeq_files": three panels per model, one row per setting (converter modes blue, AEQ
        recipes orange): LiteRT test accuracy (%, median with min–max over seeds; dotted:
        float32), file size (KB, and × float32), and latency against float32 (median ratio of
        interleaved rounds, min–max over seeds, log axis); "aeq_layers": two panels per model:
        AEQ's validate() mse against qlab's accumulated mse for every tensor (log-log, with the
        diagonal and the largest relative gap in the title), and per layer each AEQ recipe's local
        mse over its accumulated mse: the share of the error validate() reports at a tensor that
        its own op adds (1, dashed: all of it; 0: none, e.g. a reshape, or a float op on float
        inputs).}"""
    return {"aeq_files": _files(aeq_study.summary(table)), "aeq_layers": _layers(table)}


def _files(summary: pd.DataFrame) -> Figure:
    names = list(dict.fromkeys(summary.model))
    most = max([int((summary.model == n).sum()) for n in names] or [1])
    fig, axes = figure(3 * max(len(names), 1), ncols=3, width=4.0, height=0.3 * most + 1.3)
    for row, name in enumerate(names):
        rows = summary[summary.model == name].reset_index(drop=True)
        y, colors = np.arange(len(rows)), [ROUTE_COLORS.get(r, "gray") for r in rows.route]
        done = rows.accuracy_pct.notna().to_numpy()
        acc, size, latency = axes[3 * row : 3 * row + 3]
        _accuracy_and_latency(acc, latency, rows, y[done], colors)
        float32 = rows[rows.setting == "float32"]
        if len(float32) and np.isfinite(float32.accuracy_pct.iloc[0]):
            acc.axvline(float32.accuracy_pct.iloc[0], color="gray", ls=":", lw=1)
        size.barh(y, rows.size_bytes.fillna(0) / KB, color=colors)
        base = float32.size_bytes.iloc[0] if len(float32) else np.nan
        for i in y[done]:
            kb = rows.size_bytes[i] / KB
            size.text(
                kb,
                i,
                f" {kb:.1f}" + (f" ({rows.size_bytes[i] / base:.2f}×)" if base == base else ""),
                va="center",
                fontsize=7,
            )
        for i in y[~done]:
            acc.text(
                0.5,
                i,
                "not computed",
                transform=acc.get_yaxis_transform(),
                ha="center",
                va="center",
                fontsize=8,
                color="gray",
            )
        latency.axvline(1, color="gray", ls=":", lw=1)
        latency.set_xscale("log")
        size.set_xlim(0, 1.45 * max(np.nanmax(rows.size_bytes.to_numpy(float) / KB, initial=1), 1))
        for ax in (acc, size, latency):
            ax.set_yticks(y, rows.setting if ax is acc else [""] * len(y), fontsize=8)
            ax.set_ylim(len(y) - 0.5, -0.5)
            ax.grid(axis="x", alpha=0.3)
        seeds = int(rows.seeds.max()) if len(rows) else 0
        acc.set(xlabel="test accuracy (%)", title=f"{name}: accuracy, {seeds} seed(s)")
        size.set(xlabel="file size (KB)", title="size (blue: converter, orange: AEQ)")
        latency.set(xlabel="latency / float32 (interleaved)", title="latency ratio, this machine")
    return fig


def _accuracy_and_latency(acc, latency, rows: pd.DataFrame, done, colors) -> None:
    for i in done:
        r = rows.loc[i]
        acc.errorbar(
            r.accuracy_pct,
            i,
            fmt="o",
            color=colors[i],
            capsize=3,
            xerr=[[r.accuracy_pct - r.accuracy_min_pct], [r.accuracy_max_pct - r.accuracy_pct]],
        )
        if np.isfinite(r.latency_x):
            latency.errorbar(
                r.latency_x,
                i,
                fmt="o",
                color=colors[i],
                capsize=3,
                xerr=[[r.latency_x - r.latency_x_min], [r.latency_x_max - r.latency_x]],
            )


def _layers(table: pd.DataFrame) -> Figure:
    names = list(dict.fromkeys(table.model))
    fig, axes = figure(2 * max(len(names), 1), ncols=2, width=5.2, height=3.8)
    layers = (
        table[(table.layer.fillna("") != "") & table.aeq_mse.notna()]
        if "aeq_mse" in table
        else table.iloc[:0]
    )
    for row, name in enumerate(names):
        both, views = axes[2 * row], axes[2 * row + 1]
        part = layers[layers.model == name]
        if not len(part):
            for ax in (both, views):
                ax.text(
                    0.5,
                    0.5,
                    "no ai-edge-quantizer file measured",
                    ha="center",
                    transform=ax.transAxes,
                )
            continue
        colors = {s: f"C{i}" for i, s in enumerate(dict.fromkeys(part.setting))}
        shown = part[(part.aeq_mse > 0) & (part.accumulated_mse > 0)]
        for setting, rows in shown.groupby("setting", sort=False):
            both.scatter(
                rows.accumulated_mse, rows.aeq_mse, s=18, color=colors[setting], label=setting
            )
        ends = [
            shown[["aeq_mse", "accumulated_mse"]].min().min(),
            shown[["aeq_mse", "accumulated_mse"]].max().max(),
        ]
        both.plot(ends, ends, color="black", lw=0.8, ls="--", zorder=0, label="AEQ = qlab")
        gap = (
            (part.aeq_mse - part.accumulated_mse).abs()
            / part.accumulated_mse.where(part.accumulated_mse > 0)
        ).max()
        both.set(
            xscale="log",
            yscale="log",
            xlabel="qlab, accumulated view: mse (real units²)",
            ylabel="AEQ validate(): mse",
            title=f"{name}: per tensor, largest relative gap {gap:.1e}",
        )
        both.legend(fontsize=7)
        for setting, rows in part.groupby("setting", sort=False):
            per = rows.groupby("layer", sort=False)[["accumulated_mse", "local_mse"]].median()
            x = np.arange(len(per))
            views.plot(
                x,
                per.local_mse / per.accumulated_mse.where(per.accumulated_mse > 0),
                "o-",
                color=colors[setting],
                label=setting,
            )
            views.set_xticks(x, per.index, rotation=30, fontsize=7)
        views.axhline(1, color="black", lw=0.8, ls="--")
        views.set(
            ylabel="local mse / accumulated mse",
            ylim=(-0.03, max(1.1, views.get_ylim()[1])),
            title=f"{name}: the share of each tensor's error its op adds itself",
        )
        views.legend(fontsize=6.5)
        for ax in (both, views):
            ax.grid(alpha=0.3)
    return fig


def sensitivity_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The sensitivity study's figure, from its per-seed rows (`qlab.studies.sensitivity.measure`).

    Returns:
        {"sensitivity": two panels per model, "quantize_one" (the output mse each layer adds when
        it alone is int8) and "float_one" (the mse it removes when it alone stays float; red,
        negative: keeping it float made the output worse), one bar per layer, median over seeds
        with a min–max bar, most sensitive on top (by median rank), each labelled with its rank,
        median [min–max] over seeds.}"""
    names = list(dict.fromkeys(table.model))
    ways = {
        "quantize_one": ("only this layer int8", "mse it adds alone"),
        "float_one": ("only this layer float", "mse it removes kept float"),
    }
    fig, axes = figure(
        2 * max(len(names), 1), ncols=2, width=5.2, height=0.32 * table.layer.nunique() + 1.7
    )
    for row, name in enumerate(names):
        for col, (way, (what, xlabel)) in enumerate(ways.items()):
            ax, part = axes[2 * row + col], table[(table.model == name) & (table.setting == way)]
            if not len(part):
                ax.text(0.5, 0.5, f"{way} not measured", ha="center", transform=ax.transAxes)
                continue
            stats = part.groupby("layer", sort=False).agg(
                effect=("effect_mse", "median"),
                low=("effect_mse", "min"),
                high=("effect_mse", "max"),
                rank=("rank", "median"),
                rank_min=("rank", "min"),
                rank_max=("rank", "max"),
                seeds=("seed", "nunique"),
            )
            stats = stats.sort_values(["rank", "effect"], ascending=[True, False], kind="stable")
            y, unit = np.arange(len(stats)), _unit(stats[["low", "high"]].abs().to_numpy())
            stats[["effect", "low", "high"]] /= unit
            ax.barh(
                y,
                stats.effect,
                xerr=[stats.effect - stats.low, stats.high - stats.effect],
                capsize=3,
                color=np.where(
                    stats.effect >= 0, DEPLOYED if way == "quantize_one" else FLOAT, CLIP
                ),
            )
            labels = [
                f"{layer}  rank {r['rank']:g} [{r.rank_min:g}–{r.rank_max:g}]"
                for layer, r in stats.iterrows()
            ]
            ax.set_yticks(y, labels, fontsize=7.5)
            ax.set_ylim(len(y) - 0.5, -0.5)
            ax.axvline(0, color="black", lw=0.8)
            ax.set(
                xlabel=f"output {xlabel} ({unit:.0e} real units²)",
                title=f"{name}, {way}: {what}\n"
                f"{int(stats.seeds.max())} seed(s), most sensitive on top",
            )
            ax.grid(axis="x", alpha=0.3)
    return {"sensitivity": fig}


def _unit(values: np.ndarray) -> float:
    """A power of ten near the largest of `values` (1 if none is finite and nonzero)."""
    top = np.nanmax(values, initial=0.0)
    return float(10.0 ** np.floor(np.log10(top))) if top > 0 else 1.0


def mixed_precision_figures(table: pd.DataFrame) -> dict[str, Figure]:
    """The mixed-precision study's figure, from its per-seed rows
    (`qlab.studies.mixed_precision.measure`).

    Returns:
        {"mixed_precision": one panel per model and source of activation ranges (the setting):
        accuracy against the same seed's float32 file (pp) against file size (KB, log) of every
        configuration the search tried (gray dots, its chosen path a thin line), each seed's Pareto
        front as a step line, the uniform configurations and the converter's modes marked (at the
        median over seeds), the cheapest configuration within `TOLERANCE_PP` ringed in red, and the
        line float32 − tolerance dashed.}"""
    panels = list(dict.fromkeys(zip(table.model, table.setting)))
    fig, axes = figure(max(len(panels), 1), width=7.0, height=4.2)
    for ax, (name, setting) in zip(axes, panels):
        part = table[(table.model == name) & (table.setting == setting)].assign(
            delta=lambda t: 100 * (t.accuracy - t.float_accuracy), kb=lambda t: t.size_bytes / KB
        )
        seeds = list(dict.fromkeys(part.seed))
        search = part[part.kind == "search"]
        ax.scatter(
            search.kb,
            search.delta,
            s=12,
            color="gray",
            alpha=0.5,
            lw=0,
            label="configurations tried",
        )
        right = part.kb.max() * 1.03
        for k, seed in enumerate(seeds):
            mine = part[part.seed == seed]
            path = mine[(mine.kind == "search") & mine.chosen.astype(bool)].sort_values("step")
            ax.plot(
                path.kb,
                path.delta,
                "-",
                color="gray",
                lw=0.6,
                alpha=0.7,
                label="the search's path" if k == 0 else None,
            )
            front = mine[mine.pareto.astype(bool)].sort_values(["kb", "delta"])
            color = DEPLOYED if len(seeds) == 1 else f"C{k + 1}"
            ax.step(
                np.r_[front.kb, right],
                np.r_[front.delta, front.delta.iloc[-1:]],
                where="post",
                color=color,
                lw=1.5,
                label="Pareto front" + ("" if len(seeds) == 1 else f", seed {seed}"),
            )
        marked = (
            part[part.kind != "search"]
            .groupby(["kind", "config"], sort=False)[["kb", "delta"]]
            .median()
        )
        for k, ((kind, config), at) in enumerate(marked.sort_values("kb").iterrows()):
            rows, color = part[(part.kind == kind) & (part.config == config)], COLORS[kind]
            ax.scatter(
                rows.kb,
                rows.delta,
                marker=UNIFORM_MARKERS.get(config, "D"),
                s=50,
                color=color,
                edgecolor="black",
                lw=0.5,
                zorder=3,
            )
            ax.annotate(
                config,
                (at.kb, at.delta),
                xytext=(0, (8, -14, 18, -24, 28, -34)[k % 6]),
                ha="center",
                textcoords="offset points",
                fontsize=7,
                color=color,
            )
        best = part[part.cheapest.astype(bool)]
        ax.scatter(
            best.kb,
            best.delta,
            s=160,
            facecolor="none",
            edgecolor=CLIP,
            lw=1.8,
            zorder=4,
            label=f"cheapest within {mp_study.TOLERANCE_PP} pp",
        )
        ax.axhline(0, color="gray", ls=":", lw=1, label="float32")
        ax.axhline(
            -mp_study.TOLERANCE_PP,
            color=CLIP,
            ls="--",
            lw=1,
            label=f"float32 − {mp_study.TOLERANCE_PP} pp",
        )
        low, high = np.nanmin(np.r_[part.delta, 0]), np.nanmax(np.r_[part.delta, 0])
        ax.set(
            xscale="log",
            xlabel="file size (KB, log)",
            ylabel="accuracy − float32 (pp)",
            ylim=(min(low, -mp_study.TOLERANCE_PP) - 0.3, high + 0.3),
            xlim=(part.kb.min() / 1.08, right * 1.08),
            title=f"{name}, {setting} ranges: mixed precision, {len(seeds)} seed(s)\n"
            "blue: uniform precision; green: the converter's modes",
        )
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(
            ticker.FuncFormatter(lambda v, _: f"{v:g}" if str(int(v))[0] in "2345678" else "")
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return {"mixed_precision": fig}
