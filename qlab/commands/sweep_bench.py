"""`python -m qlab sweep-bench NAME`: how much faster one study's whole sweep runs on 2 worker
processes than on 1 (the sweep engine, `qlab.studies.sweep`, on loky).

What the cells share (the study's `prepare`: trained models) is built once, in a warm cache folder
kept under qlab's cache (`sweep-bench/NAME`, so a rerun trains nothing). Then, for R interleaved
rounds, the order alternating round to round, the whole grid runs with 1 worker and with 2, each
run in a fresh copy of the warm cache (every cell is measured, no model retrained) and on fresh
worker processes (a run pays for starting them, as `python -m qlab study` does), timed wall-clock.
Writes OUT/sweep_bench_NAME.csv (one row per run: round, jobs, seconds); `summary` is the terminal
text, which `qlab.__main__` prints.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from joblib.executor import get_memmapping_executor

from qlab.infra import cache
from qlab.infra import progress as bars
from qlab.studies import sweep

log = logging.getLogger(__name__)
JOBS = (1, 2)
"""The worker counts compared."""


@dataclass
class SweepBench:
    """What `run` measured and wrote."""

    name: str
    grid: sweep.Grid
    runs: pd.DataFrame  # one row per run: round, jobs, seconds
    identical: bool  # every run gave the same table (latency columns, times by nature, left out)
    prepared: int  # `prepare` calls made in the warm cache (each builds only what is not there yet)
    prepare_seconds: float
    written: Path

    def seconds(self, jobs: int) -> tuple[float, float, float]:
        """Wall-clock seconds of the runs on `jobs` workers.

        Returns:
            (median, min, max).
        """
        return sweep.spread(self.runs.loc[self.runs.jobs == jobs, "seconds"])

    def speedup(self) -> tuple[float, float, float]:
        """Per round, the seconds on 1 worker over the seconds on 2.

        Returns:
            (median, min, max) over the rounds.
        """
        by_round = self.runs.pivot(index="round", columns="jobs", values="seconds")
        return sweep.spread(by_round[JOBS[0]] / by_round[JOBS[-1]])


def run(
    name: str,
    out: str | Path = "results",
    names=None,
    seeds=(0,),
    settings=None,
    rounds: int = 3,
    progress: bool = True,
) -> SweepBench:
    """Time study `name`'s grid on 1 and on 2 loky workers, `rounds` times each, from a warm cache.

    Args:
        names, seeds, settings: the grid, as `qlab.studies.sweep.grid` takes them.
        rounds: interleaved rounds (each runs the grid once per worker count).
        progress: False hides the bar (one step per run).

    Returns:
        the `SweepBench`.

    Raises:
        ValueError: an unknown study, model or setting, a bad seed, rounds below 1; whatever a
            cell raises.
        OSError: the cache or `out` cannot be written.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a whole number of 1 or more, got {rounds!r}")
    grid = sweep.grid(name, names, seeds, settings)
    warm = cache.cache_dir() / "sweep-bench" / name
    warm.mkdir(parents=True, exist_ok=True)
    with cache.use(warm):
        started = time.perf_counter()
        prepared = sweep.prepare(grid)
        prepare_seconds = time.perf_counter() - started
    rows, tables = [], []
    with (
        tempfile.TemporaryDirectory(prefix="qlab-sweep-bench-") as tmp,
        bars.bar(total=rounds * len(JOBS), desc=f"sweep-bench {name}", show=progress) as bar,
    ):
        for round_ in range(1, rounds + 1):
            for jobs in JOBS if round_ % 2 else JOBS[::-1]:
                copy = Path(tmp, f"round{round_}-jobs{jobs}", "cache")
                shutil.copytree(warm, copy)
                _stop_workers()
                with cache.use(copy):
                    started = time.perf_counter()
                    tables.append(sweep.run(grid, jobs, show=False))
                    rows.append(
                        {"round": round_, "jobs": jobs, "seconds": time.perf_counter() - started}
                    )
                shutil.rmtree(copy.parent)
                bar.update(1)
    _stop_workers()
    timed = [
        c for c in tables[0].columns if "latency" in c
    ]  # measured times differ from run to run by nature
    identical = all(
        table.drop(columns=timed).equals(tables[0].drop(columns=timed)) for table in tables[1:]
    )
    if not identical:
        log.warning("sweep-bench %s: the runs gave different tables", name)
    written = Path(out) / f"sweep_bench_{name}.csv"
    frame = pd.DataFrame(rows, columns=["round", "jobs", "seconds"])
    cache.write_atomic(written, frame.to_csv(index=False).encode())
    return SweepBench(name, grid, frame, identical, prepared, prepare_seconds, written)


def _stop_workers() -> None:
    """Stop this process's idle loky workers, so that the next sweep starts its own."""
    get_memmapping_executor(1).shutdown(wait=True)


def summary(result: SweepBench) -> str:
    """The terminal report: the grid, median seconds and cells per minute per worker count, the
    speed-up, whether every run gave the same table, the file written.

    Returns:
        multi-line text.
    """
    cells = result.grid.cells
    counts = {k: len({str(c[k]) for c in cells}) for k in ("model", "seed", "setting")}
    shape = " × ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items())
    rounds = result.runs["round"].nunique()
    lines = [
        f"Sweep bench {result.name}: {len(cells)} cells ({shape}), {rounds} round(s), fresh workers and a "
        f"fresh copy of the warm cache each run",
        f"  shared preparation: {result.prepared} prepare call(s), {result.prepare_seconds:.1f} s (once)",
    ]
    for jobs in JOBS:
        median, low, high = result.seconds(jobs)
        lines.append(
            f"  {jobs} worker{'s' if jobs > 1 else ' '}: {median:7.1f} s median [{low:.1f}–{high:.1f}], "
            f"{60 * len(cells) / median:.1f} cells/min"
        )
    median, low, high = result.speedup()
    lines.append(
        f"  speed-up {JOBS[0]}→{JOBS[-1]} workers: {median:.2f}× median [{low:.2f}–{high:.2f}] over {rounds} "
        "round(s)"
    )
    lines.append(f"  tables identical across runs: {'yes' if result.identical else 'NO'}")
    return "\n".join(lines + [f"\nWrote {result.written}"])
