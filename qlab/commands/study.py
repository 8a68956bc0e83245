"""`python -m qlab study NAME`: one study's grid through the sweep engine (`qlab.studies.sweep`)."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qlab import plots, studies
from qlab.infra import cache, tables
from qlab.perf import cpu
from qlab.studies import sweep


@dataclass
class Studied:
    """What `run` measured and wrote."""

    name: str
    table: pd.DataFrame  # every cell's rows (the study's columns)
    summary: pd.DataFrame  # the study's `summary(table)`
    headline: str  # the study's `headline(table)`
    out: Path
    elapsed: float  # seconds
    written: list[Path] = field(default_factory=list)


def run(
    name: str,
    out: str | Path = "results",
    names=None,
    seeds=(0, 1, 2, 3, 4),
    settings=None,
    jobs: int | None = None,
    progress: bool = True,
    backend: str = "loky",
    scheduler: str | None = None,
) -> Studied:
    """Writes OUT/NAME.csv (one row per cell), OUT/NAME_summary.csv (medians and spreads over
    seeds) and the study's figures as OUT/*.png. With backend "dask", the workers at `scheduler`
    write to this cache folder, which must be on a shared file system.

    Returns the `Studied` result. Raises ValueError for an unknown study, model or setting, a bad
    seed, backend, scheduler or jobs, or whatever a cell raises; OSError if `out` is not writable.
    """
    out = Path(out)
    started = time.perf_counter()
    sweep.check_backend(backend, scheduler, jobs)
    module = studies.get(name)
    grid = sweep.grid(name, names, seeds, settings)
    table = sweep.run(grid, jobs, backend=backend, show=progress, scheduler=scheduler)
    result = Studied(name, table, module.summary(table), module.headline(table), out, 0.0)
    for stem, frame in ((name, table), (f"{name}_summary", result.summary)):
        cache.write_atomic(out / f"{stem}.csv", frame.to_csv(index=False).encode())
        result.written.append(out / f"{stem}.csv")
    figures = getattr(plots, f"{name.replace('-', '_')}_figures")(table)
    for stem, fig in figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        cache.write_atomic(out / f"{stem}.png", buffer.getvalue())
        result.written.append(out / f"{stem}.png")
    result.elapsed = time.perf_counter() - started
    return result


def summary(result: Studied) -> str:
    """Returns the terminal report: headline, summary table (under the CPU line for a study that
    measures latency), files written."""
    seeds = sorted(result.table.seed.unique().tolist()) if len(result.table) else []
    timed = set(cpu.MACHINE_COLUMNS) <= set(result.table.columns)
    return "\n".join(
        [
            f"Study {result.name} over seeds {seeds} ({result.elapsed:.0f} s):\n",
            *([cpu.line(result.table) + "\n"] if timed else []),
            tables.to_text(cpu.without_columns(result.summary)),
            "\n" + result.headline,
            "\nWrote " + ", ".join(str(p) for p in result.written),
        ]
    )
