"""`python -m qlab views`: how long the per-layer views take on each zoo model over its test split
(the benchmark behind the figure in docs/latency.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qlab.infra import cache, tables
from qlab.perf import views
from qlab.tflite import measure


@dataclass
class Timed:
    """What `run` measured and wrote."""

    table: pd.DataFrame  # qlab.perf.views.time_views, or another timing command's table
    out: Path
    elapsed: float  # seconds


def run(out: str | Path = "results", names=None, rounds: int = 3, progress: bool = True) -> Timed:
    """Writes OUT/views.csv. Returns the `Timed` table.

    Raises ValueError for an unknown model or rounds < 1, OSError if `out` cannot be written.
    """
    return timed(
        out, "views.csv", lambda: views.time_views(names, rounds=rounds, progress_bar=progress)
    )


def timed(out: str | Path, name: str, measure) -> Timed:
    """Writes the table `measure()` returns to OUT/name. Returns it as `Timed`, with seconds.

    Raises whatever `measure` raises, or OSError if `out` cannot be written.
    """
    out = Path(out)
    started = time.perf_counter()
    table = measure()
    cache.write_atomic(out / name, table.to_csv(index=False).encode())
    return Timed(table, out, time.perf_counter() - started)


def summary(result: Timed) -> str:
    """Returns text: the table, the slowest cell and the machine."""
    timed = result.table.dropna(subset=["median_s"])
    m = measure.machine()
    lines = [
        "Per-layer views (local and accumulated, one layer_errors call) "
        "over each model's test split, "
        f"median of the rounds [min, max], on {m['cpu']} ({m['cores']} cores):\n",
        tables.to_text(result.table.drop(columns=["note"])),
        *(f"  {r.model}/{r.mode}: {r.note}" for r in result.table.itertuples() if r.note),
    ]
    if len(timed):
        slowest = timed.loc[timed.median_s.idxmax()]
        lines.append(
            f"\nSlowest: {slowest.model}/{slowest['mode']}, {slowest.median_s:.2f} s "
            f"[{slowest.min_s:.2f}, {slowest.max_s:.2f}] for {slowest.images} images."
        )
    lines.append(f"Took {result.elapsed:.0f} s; wrote {result.out / 'views.csv'}")
    return "\n".join(lines)
