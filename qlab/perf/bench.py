"""`python -m qlab bench`: latency of every model under each LiteRT kernel choice, thread
count and batch size, measured interleaved so that machine drift cancels in the ratios."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qlab.infra.progress import bar as progress_bar
from qlab.tflite import measure
from qlab.tflite.runtime import KERNELS, Runtime
from qlab.vocabulary import VERDICTS  # noqa: F401  (bench.VERDICTS words verdict's answers)

BASELINE = ("float", "float32")
"""The (training, mode) every ratio is taken against."""


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. Every (kernels, threads, batch) is one setting; each setting times every
    model in `rounds` interleaved rounds of blocks lasting about `block_ms` ms each (at most 500
    invokes). `kernels` are LiteRT kernel choices; `threads` run from 1 to this machine's cores;
    `batches` are images per invoke; `warmup` invokes are not counted (at least 1 is run: its
    median sizes the blocks); `loop` also times the article's loop over all test images (batch 1),
    in ms."""

    kernels: tuple[str, ...] = tuple(KERNELS)
    threads: tuple[int, ...] = tuple(t for t in (1, 2) if t <= (os.cpu_count() or 1))
    batches: tuple[int, ...] = (1, 32)
    rounds: int = 15
    block_ms: float = 2.0
    warmup: int = 5
    loop: bool = True  # also time the article's loop over all test images (batch 1 settings)

    def check(self) -> None:
        """Refuse settings that cannot be measured, saying what is valid.

        Raises:
            ValueError: no kernels, threads or batches, or one of them twice; unknown kernels, a
                thread count outside 1 to the machine's cores, a batch below 1, rounds below 1,
                a negative warmup or block_ms <= 0."""
        for name in ("kernels", "threads", "batches"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(
                    f"{name} must name each value once and at least one, got {values!r}"
                )
        for k in self.kernels:
            if k not in KERNELS:
                raise ValueError(f"unknown kernels {k!r}; valid: {', '.join(KERNELS)}")
        _check_threads_and_batches(self.threads, self.batches)
        if self.rounds < 1 or self.warmup < 0 or self.block_ms <= 0:
            raise ValueError(
                f"rounds must be >= 1 (got {self.rounds}), warmup >= 0 (got {self.warmup}), "
                f"block_ms > 0 (got {self.block_ms}): nothing would be timed"
            )


def _check_threads_and_batches(threads, batches) -> None:
    cores = os.cpu_count() or 1
    for t in threads:
        if not isinstance(t, (int, np.integer)) or not 1 <= t <= cores:
            raise ValueError(
                f"threads {t!r} not valid on this machine; valid: "
                f"{', '.join(map(str, range(1, cores + 1)))}"
            )
    for b in batches:
        if not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"batch {b!r}: the models take a batch of 1 or more images")


QUICK = BenchConfig(batches=(1, 4), rounds=3, block_ms=0.3, warmup=1, loop=False)  # CI smoke test
"""A few seconds of timing, for tests and smoke runs: numbers too noisy to quote."""


def _runtime(tflite: bytes, kernels: str, threads: int, batch: int, x: np.ndarray) -> Runtime:
    """A runtime resized to `batch` and run once on the first `batch` test images."""
    rt = Runtime(tflite, kernels=kernels, num_threads=threads)
    signature = rt.input.get("shape_signature")
    if signature is not None and len(signature) and signature[0] not in (-1, batch):
        raise ValueError(f"this model takes batches of exactly {signature[0]} images, not {batch}")
    rt.invoke_raw(rt.quantize_input(x[:batch]))  # resizes to the batch and runs once
    return rt


def _time_block(rt: Runtime, n: int) -> np.ndarray:
    interp = rt.interpreter
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter_ns()
        interp.invoke()
        out[i] = (time.perf_counter_ns() - start) / 1e3
    return out


def time_rounds(
    models: dict, x: np.ndarray, kernels: str, threads: int, batch: int, config: BenchConfig
) -> dict:
    """Every model under one setting in interleaved rounds: the raw invoke times.

    Each model's block size is set from its warmup median so that a block lasts about
    `config.block_ms`; the order is rotated every round. Only `invoke()` is timed.

    Returns:
        {key: list of `config.rounds` float arrays}, the µs of every invoke of that model's
        block in one round, in round order.

    Raises:
        ValueError: a model with a fixed batch size other than `batch`, or unknown kernels.
        InvalidModelError: bytes LiteRT cannot load."""
    return _interleaved(
        {k: _runtime(t, kernels, threads, batch, x) for k, t in models.items()}, config
    )


def time_settings(tflite: bytes, x: np.ndarray, settings, config: BenchConfig) -> dict:
    """One model under several (kernels, threads, batch) settings in interleaved rounds, so
    that settings can be compared round by round (`round_ratios`).

    Returns:
        {(kernels, threads, batch): list of `config.rounds` float arrays}, the µs of every invoke
        (a whole batch) of that setting's block in one round, in round order.

    Raises:
        ValueError: no settings, a setting twice, a batch larger than `x`, or a setting
            `BenchConfig.check` refuses.
        InvalidModelError: bytes LiteRT cannot load."""
    settings = [tuple(s) for s in settings]
    if not settings or len(set(settings)) != len(settings):
        raise ValueError(
            "settings must name each (kernels, threads, batch) once and at least one, "
            f"got {settings!r}"
        )
    for kernels, threads, batch in settings:
        BenchConfig(
            kernels=(kernels,),
            threads=(threads,),
            batches=(batch,),
            rounds=config.rounds,
            block_ms=config.block_ms,
            warmup=config.warmup,
        ).check()
        if batch > len(x):
            raise ValueError(f"batch {batch} is larger than the {len(x)} test images available")
    return _interleaved({s: _runtime(tflite, *s, x) for s in settings}, config)


def _interleaved(runtimes: dict, config: BenchConfig) -> dict:
    """`config.rounds` rounds of one block per runtime, the order rotated each round."""
    keys = list(runtimes)
    estimate = {k: float(np.median(_time_block(runtimes[k], max(config.warmup, 1)))) for k in keys}
    block = {
        k: int(min(500, max(1, math.ceil(config.block_ms * 1e3 / max(estimate[k], 0.1)))))
        for k in keys
    }
    times = {k: [] for k in keys}
    for r in range(config.rounds):
        shift = r % len(keys)  # rotate the order so no model always goes first
        for k in keys[shift:] + keys[:shift]:
            times[k].append(_time_block(runtimes[k], block[k]))
    return times


def round_ratios(times, base_times) -> np.ndarray:
    """One model's latency over a baseline's, round by round. A slow patch of the machine hits
    both sides of a round's ratio, so it cancels; quote the median with its min–max.

    Returns:
        float64 array (rounds,): median(times[r]) / median(base_times[r]).

    Raises:
        ValueError: different numbers of rounds, or none."""
    if len(times) != len(base_times) or not len(times):
        raise ValueError(
            f"need the same number of rounds, at least one: got {len(times)} and {len(base_times)}"
        )
    return np.array(
        [np.median(t) / np.median(b) for t, b in zip(times, base_times)], dtype=np.float64
    )


def verdict(low: float, high: float, tolerance: float = 0.05) -> str:
    """What the min and max over rounds of a time ratio (`round_ratios`) let one say.

    Returns:
        a key of `VERDICTS`: "same" (every round within `tolerance` of 1), "faster" or "slower"
        (below or above 1 in every round), "mixed" (the rounds disagree: this run cannot say)."""
    if low >= 1 - tolerance and high <= 1 + tolerance:
        return "same"
    return "faster" if high < 1 else "slower" if low > 1 else "mixed"


def measure_setting(
    models: dict, x: np.ndarray, kernels: str, threads: int, batch: int, config: BenchConfig
) -> pd.DataFrame:
    """All models ({(training, mode): .tflite bytes}) under one setting, interleaved.

    Returns:
        DataFrame, one row per model: training, mode, kernels, threads, batch, median_us,
        p10_us, p90_us (per invoke, µs, over all timed invokes), count (invokes timed),
        per_image_us; when `BASELINE` is among `models`, also ratio_vs_float32, ratio_p10,
        ratio_p90, ratio_min, ratio_max (over rounds of `round_ratios` to the baseline).

    Raises:
        ValueError: a model with a fixed batch size other than `batch`, or unknown kernels.
        InvalidModelError: bytes LiteRT cannot load."""
    times = time_rounds(models, x, kernels, threads, batch, config)
    rows = []
    for k, rounds in times.items():
        t = np.concatenate(rounds)
        p10, med, p90 = np.percentile(t, [10, 50, 90])
        row = {
            "training": k[0],
            "mode": k[1],
            "kernels": kernels,
            "threads": threads,
            "batch": batch,
            "median_us": med,
            "p10_us": p10,
            "p90_us": p90,
            "count": len(t),
            "per_image_us": med / batch,
        }
        if BASELINE in times:
            ratios = round_ratios(rounds, times[BASELINE])
            row.update(
                {
                    "ratio_vs_float32": float(np.median(ratios)),
                    "ratio_p10": float(np.percentile(ratios, 10)),
                    "ratio_p90": float(np.percentile(ratios, 90)),
                    "ratio_min": float(ratios.min()),
                    "ratio_max": float(ratios.max()),
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def run(
    models: dict, x: np.ndarray, config: BenchConfig = BenchConfig(), progress: bool = True
) -> pd.DataFrame:
    """Every setting of `config` for every model in `models` ({(training, mode): tflite}).

    Returns:
        one row per (model, setting), the columns of `measure_setting`, plus loop_ms (the
        article's loop over `x`, ms) for batch 1 when `config.loop`.

    Raises:
        ValueError: settings `config.check` refuses, a batch larger than `x`, or a model with
            a fixed batch size other than a setting's."""
    config.check()
    if max(config.batches) > len(x):
        raise ValueError(
            f"batch {max(config.batches)} is larger than the {len(x)} test images available"
        )
    settings = [(k, t, b) for k in config.kernels for t in config.threads for b in config.batches]
    frames = []
    for kernels, threads, batch in progress_bar(
        settings, desc="settings", total=len(settings), show=progress, unit="setting"
    ):
        frame = measure_setting(models, x, kernels, threads, batch, config)
        if config.loop and batch == 1:
            frame["loop_ms"] = [
                measure.loop_ms(models[(r.training, r.mode)], x, kernels, threads, repeats=1)
                for r in frame.itertuples()
            ]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


SPREADS = {"p10-p90": ("ratio_p10", "ratio_p90"), "min-max": ("ratio_min", "ratio_max")}
"""The spreads `summary` can show: name -> (low column, high column)."""


def summary(bench: pd.DataFrame, batch: int = 1, spread: str = "p10-p90") -> pd.DataFrame:
    """Compact view: each model's ratio to float32 per kernels × threads, at one batch size.

    Returns:
        DataFrame of strings "ratio [low–high]" (`spread` over rounds): one row per model
        ("training/mode", in the order of `bench`), one column per setting ("kernels/<threads>t").

    Raises:
        AttributeError: a table without ratio columns.
        ValueError: an unknown `spread`."""
    if spread not in SPREADS:
        raise ValueError(f"unknown spread {spread!r}; valid: {', '.join(SPREADS)}")
    low, high = SPREADS[spread]
    sub = bench[bench.batch == batch].copy()
    sub["setting"] = sub.kernels + "/" + sub.threads.astype(str) + "t"
    sub["model"] = sub.training + "/" + sub["mode"]
    sub["ratio"] = [
        f"{r.ratio_vs_float32:.2f} [{getattr(r, low):.2f}–{getattr(r, high):.2f}]"
        for r in sub.itertuples()
    ]
    order = list(dict.fromkeys(sub.model))
    table = sub.pivot(index="model", columns="setting", values="ratio").reindex(order)
    return table[list(dict.fromkeys(sub.setting))]
