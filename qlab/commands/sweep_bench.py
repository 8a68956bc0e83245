"""`python -m qlab sweep-bench NAME`: how much faster one study's whole sweep runs on 2 worker
processes than on 1 (the sweep engine, `qlab.studies.sweep`, on loky).

What the cells share (the study's `prepare`) is built once in a warm cache folder
(`sweep-bench/NAME` under qlab's cache). Then, for R interleaved rounds, the grid runs with 1 worker
and with 2, each run in a fresh copy of the warm cache and on fresh worker processes, timed
wall-clock.
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
        """Returns (median, min, max) wall-clock seconds of the runs on `jobs` workers."""
        return sweep.spread(self.runs.loc[self.runs.jobs == jobs, "seconds"])

    def speedup(self) -> tuple[float, float, float]:
        """Returns (median, min, max) over rounds of the seconds on 1 worker over those on 2."""
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
    """Times study `name`'s grid on 1 and 2 loky workers, `rounds` times each; writes
    OUT/sweep_bench_NAME.csv (round, jobs, seconds).

    Returns the `SweepBench`. Raises ValueError for an unknown study, model or setting, a bad
    seed, rounds below 1, or whatever a cell raises; OSError if the cache or `out` is not writable.
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
    # measured times differ from run to run by nature
    timed = [c for c in tables[0].columns if "latency" in c]
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
    """Returns the terminal report: grid, seconds and cells per minute per worker count,
    speed-up, whether the tables agree, the file written."""
    cells = result.grid.cells
    counts = {k: len({str(c[k]) for c in cells}) for k in ("model", "seed", "setting")}
    shape = " × ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items())
    rounds = result.runs["round"].nunique()
    lines = [
        f"Sweep bench {result.name}: {len(cells)} cells ({shape}), {rounds} round(s), "
        f"fresh workers and a fresh copy of the warm cache each run",
        f"  shared preparation: {result.prepared} prepare call(s), "
        f"{result.prepare_seconds:.1f} s (once)",
    ]
    for jobs in JOBS:
        median, low, high = result.seconds(jobs)
        lines.append(
            f"  {jobs} worker{'s' if jobs > 1 else ' '}: {median:7.1f} s median "
            f"[{low:.1f}–{high:.1f}], {60 * len(cells) / median:.1f} cells/min"
        )
    median, low, high = result.speedup()
    lines.append(
        f"  speed-up {JOBS[0]}→{JOBS[-1]} workers: {median:.2f}× median "
        f"[{low:.2f}–{high:.2f}] over {rounds} round(s)"
    )
    lines.append(f"  tables identical across runs: {'yes' if result.identical else 'NO'}")
    return "\n".join(lines + [f"\nWrote {result.written}"])
