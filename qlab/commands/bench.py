"""`python -m qlab bench`: latency of every model of the plan under each kernel choice, threads and
batch; the exact size breakdown; MACs and the latency floor. Writes files, prints nothing: the
text for the terminal is `summary`'s, and `qlab.__main__` prints it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qlab import artifacts, data, measure, plots
from qlab.perf import bench as perf_bench
from qlab.perf import sizes, work
from qlab.train import TrainConfig


@dataclass
class Benched:
    """What `bench` measured and wrote."""

    tables: dict[str, pd.DataFrame]  # "bench", "sizes", "work"
    config: perf_bench.BenchConfig
    out: Path
    elapsed: float  # seconds
    written: list[Path] = field(default_factory=list)


def bench(out: str | Path = "results", config: perf_bench.BenchConfig = perf_bench.BenchConfig(),
          seed: int = 0, progress: bool = True) -> Benched:
    """Latency grid, size breakdown and work floor for every model of the plan (seed `seed`).

    Writes OUT/bench.csv, sizes.csv, work.csv, bench.png and sizes.png.

    Returns:
        the `Benched` tables (see `qlab.perf.bench.run`, `qlab.perf.sizes.table`,
        `qlab.perf.work.floor_table`) and the files written.

    Raises:
        ValueError: settings `BenchConfig.check` refuses.
        OSError: `out` cannot be written.
    """
    config.check()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    models = artifacts.convert_plan(seed=seed, progress=progress)
    num_params = artifacts.trained(TrainConfig(seed=seed), progress=progress).count_params()
    tables = {"bench": perf_bench.run(models, data.load().x_test, config, progress)}
    tables["sizes"] = sizes.table(models, num_params)
    tables["work"] = work.floor_table(models, tables["bench"])
    written = []
    for name, frame in tables.items():
        frame.to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
    for name, fig in (("bench", plots.bench_ratios(tables["bench"])), ("sizes", plots.size_breakdown(tables["sizes"]))):
        fig.savefig(out / f"{name}.png", dpi=120)
        written.append(out / f"{name}.png")
    return Benched(tables, config, out, time.perf_counter() - started, written)


def summary(result: Benched) -> str:
    """The terminal report: ratios to float32 per batch size, the size breakdown, the work floor.

    Returns:
        multi-line text.
    """
    m = measure.machine()
    bench_table = result.tables["bench"]
    parts = [f"Latency relative to float/float32 on the same kernels and threads (median [p10–p90] over "
             f"{result.config.rounds} interleaved rounds):"]
    for b in result.config.batches:
        parts += [f"\nBatch {b}:\n", perf_bench.summary(bench_table, b).to_string()]
    parts += ["\nSize breakdown (bytes):\n",
              result.tables["sizes"].to_string(index=False, float_format=lambda v: f"{v:.3f}"),
              "\nWork and the floor it implies (XNNPACK, 1 thread, batch 1):\n",
              result.tables["work"].to_string(index=False, float_format=lambda v: f"{v:.3f}"),
              f"\n{m['cpu']}, {m['cores']} cores, LiteRT {m['ai_edge_litert']}; took {result.elapsed:.0f} s. "
              f"Wrote {', '.join(p.name for p in result.written)} under {result.out}"]
    return "\n".join(parts)
