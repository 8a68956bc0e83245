"""`python -m qlab bench`: latency of every model of the plan under each kernel choice, threads and
batch; this CPU's peak MAC rate per data type; the size breakdown; MACs and the latency floor."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qlab import artifacts, plots
from qlab.perf import bench as perf_bench
from qlab.perf import cpu, sizes, work
from qlab.tflite import measure
from qlab.training import data
from qlab.training.fit import TrainConfig


@dataclass
class Benched:
    """What `bench` measured and wrote."""

    tables: dict[str, pd.DataFrame]  # "bench", "peaks", "sizes", "work"
    config: perf_bench.BenchConfig
    out: Path
    elapsed: float  # seconds
    written: list[Path] = field(default_factory=list)


def bench(
    out: str | Path = "results",
    config: perf_bench.BenchConfig = perf_bench.BenchConfig(),
    seed: int = 0,
    progress: bool = True,
) -> Benched:
    """Writes OUT/bench.csv, peaks.csv, sizes.csv, work.csv, bench.png and sizes.png.

    The latency tables carry the CPU and its int8 path (`qlab.perf.cpu`) on every row; bench.csv
    also each row's MACs, its kernels' one-thread peak and the floor they imply.
    Returns the `Benched` tables and files. Raises ValueError for settings `BenchConfig.check`
    refuses, OSError if `out` cannot be written.
    """
    config.check()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    models = artifacts.convert_all(seed=seed, progress=progress)
    num_params = artifacts.trained(TrainConfig(seed=seed), progress=progress).count_params()
    tables = {"bench": perf_bench.run(models, data.load().x_test, config, progress)}
    peak_kernels = [
        k for k in work.PEAK_KERNELS if k == "xnnpack" or k in config.kernels
    ]  # xnnpack: the floor's
    peak_config = dataclasses.replace(
        work.PEAK_CONFIG, rounds=config.rounds, warmup=max(1, min(config.warmup, 2))
    )
    tables["peaks"] = cpu.with_columns(
        work.peaks(peak_kernels, peak_config), kernels=None, threads=None
    )
    tables["bench"] = cpu.with_columns(
        work.with_floor(tables["bench"], models, tables["peaks"]), None, None
    )
    tables["sizes"] = sizes.table(models, num_params)
    tables["work"] = cpu.with_columns(work.floor_table(models, tables["bench"], tables["peaks"]))
    written = []
    for name, frame in tables.items():
        frame.to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
    for name, fig in (
        ("bench", plots.bench_ratios(tables["bench"])),
        ("sizes", plots.size_breakdown(tables["sizes"])),
    ):
        fig.savefig(out / f"{name}.png", dpi=120)
        written.append(out / f"{name}.png")
    return Benched(tables, config, out, time.perf_counter() - started, written)


def peak_lines(peak_table: pd.DataFrame) -> list[str]:
    """Returns lines of text: one per probe and kernel choice, then the verdict."""
    lines = []
    for (shape, kernels), part in peak_table.groupby(["shape", "kernels"], sort=False):
        rates = {r.dtype: r for r in part.itertuples()}
        text = ", ".join(
            f"{d} {r.gmacs:.1f} GMAC/s [{r.gmacs_min:.1f}–{r.gmacs_max:.1f}]"
            for d, r in rates.items()
        )
        i8 = rates["int8"]
        lines.append(
            f"  {shape}, {kernels}: {text}; int8/float32 {i8.vs_float32:.2f}× "
            f"[{i8.vs_float32_min:.2f}–{i8.vs_float32_max:.2f}]"
        )
    return lines + ["", work.peak_verdict(peak_table)]


def model_verdicts(
    bench_table: pd.DataFrame, kernels: str = "xnnpack", threads: int = 1, batch: int = 1
) -> str:
    """Returns one line per `qlab.perf.bench.verdict` some model has against float/float32 under
    one setting, e.g. "  faster than float32 in every round: float/dynamic_range 0.35 [0.33–0.36]";
    "" if the setting was not measured."""
    baseline = (bench_table.training == "float") & (bench_table["mode"] == "float32")
    sub = bench_table[
        (bench_table.kernels == kernels)
        & (bench_table.threads == threads)
        & (bench_table.batch == batch)
        & ~baseline
    ]
    said = {
        "faster": "faster than float32 in every round",
        "slower": "slower than float32 in every round",
        "same": "within 5 % of float32 in every round",
        "mixed": "mixed (the rounds disagree)",
    }
    found = {}
    for r in sub.itertuples():
        found.setdefault(perf_bench.verdict(r.ratio_min, r.ratio_max), []).append(
            f"{r.training}/{r.mode} {r.ratio_vs_float32:.2f} [{r.ratio_min:.2f}–{r.ratio_max:.2f}]"
        )
    return "\n".join(f"  {said[v]}: {', '.join(found[v])}" for v in said if v in found)


def summary(result: Benched) -> str:
    """Returns the terminal report: CPU, peaks and int8 verdict, ratios to float32 per batch,
    size breakdown and work floor."""
    m = measure.machine()
    bench_table, peaks = result.tables["bench"], result.tables["peaks"]
    verdicts = model_verdicts(bench_table)
    parts = [
        cpu.line(peaks[list(cpu.MACHINE_COLUMNS)]),
        "\nPeak MAC rate, 1 thread (median [min–max] over "
        f"{int(peaks['rounds'].max())} interleaved rounds):",
        *peak_lines(peaks),
        *(
            [
                "On this CPU, XNNPACK, 1 thread, batch 1 "
                "(median [min–max] of the per-round ratios to float32):",
                verdicts,
            ]
            if verdicts
            else []
        ),
        "\nLatency relative to float/float32 on the same kernels and threads "
        f"(median [p10–p90] over {result.config.rounds} interleaved rounds):",
    ]
    for b in result.config.batches:
        parts += [f"\nBatch {b}:\n", perf_bench.summary(bench_table, b).to_string()]
    work_table = cpu.without_columns(result.tables["work"])
    parts += [
        "\nSize breakdown (bytes):\n",
        result.tables["sizes"].to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        "\nWork and the floor it implies at the peak above (XNNPACK, 1 thread, batch 1):\n",
        work_table.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        f"\n{m['cpu']}, {m['cores']} cores, LiteRT {m['ai_edge_litert']}; "
        f"took {result.elapsed:.0f} s. "
        f"Wrote {', '.join(p.name for p in result.written)} under {result.out}",
    ]
    return "\n".join(parts)
