"""The sweep engine under every study: a grid of independent cells (model × seed × setting), each
measured by the study's `measure` in a joblib worker process, each cell's rows cached as soon as
the cell ends, gathered into one tidy table.

- **Resumable.** A cell's rows are stored in qlab's cache (`qlab.cache`, written atomically) by the
  worker that measured it, keyed by the study, its `VERSION`, the cell and the TensorFlow version.
  A rerun measures only the cells not stored yet; a killed sweep loses only the cells in flight.
- **Parallel.** Cells run through joblib's `loky` process backend on this machine (one process
  per core by default). Each worker sets TensorFlow's thread pools to its share of the cores
  (`tf.config.threading`), so workers do not fight over them. One job runs in this process.
- **Reproducible.** A cell seeds everything it trains (the study's duty), so its rows do not depend
  on which worker ran it or what ran there before; the table is in the order of the grid.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
from dataclasses import dataclass

import joblib
import pandas as pd

from qlab import cache, models, progress, studies

log = logging.getLogger(__name__)
BACKENDS = ("loky",)
"""The joblib backends a sweep can use: worker processes on this machine."""
_threads_set: list[int] = []  # this process's TensorFlow thread count, once set


@dataclass(frozen=True)
class Grid:
    """The cells of one sweep.

    Attributes:
        study: the study's name (`qlab.studies.STUDIES`).
        module: its module's dotted name (what the workers import).
        cells: one dict per cell, {"model": str, "seed": int, "setting": JSON value}, in table order.
    """

    study: str
    module: str
    cells: tuple


def grid(study: str, names=None, seeds=(0, 1, 2, 3, 4), settings=None) -> Grid:
    """The grid of study `study`: every model × seed × setting, checked before anything runs.

    Args:
        names: zoo model names (default: the study's `MODELS`).
        seeds: the seeds, whole numbers in 0..2**32 - 1.
        settings: the study's settings (default: its `SETTINGS`).

    Returns:
        the `Grid`.

    Raises:
        ValueError: an unknown study (listing them), an unknown model (listing the zoo), no seeds or
            a bad one, a seed or setting given twice, or what the study's `check` refuses.
    """
    module = studies.get(study)
    names = list(module.MODELS if names is None else names)
    for name in names:
        models.get(name)  # an unknown model: ValueError listing the zoo
    seeds, settings = list(seeds), list(module.SETTINGS if settings is None else settings)
    if not seeds or not names or not settings:
        raise ValueError(f"study {study}: give at least one model, seed and setting")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be a whole number in 0..2**32 - 1, got {seed!r}")
    for what, values in (("model", names), ("seed", seeds), ("setting", [json.dumps(s) for s in settings])):
        if len(set(values)) != len(values):
            raise ValueError(f"study {study}: each {what} once, got {values}")
    module.check(names, settings)
    cells = tuple({"model": m, "seed": s, "setting": x} for m in names for s in seeds for x in settings)
    return Grid(study, module.__name__, cells)


def cell_key(grid_: Grid, cell: dict) -> str:
    """The cache name of one cell's rows.

    Returns:
        a `qlab.cache.key` of kind "study-cell" over the study, its VERSION and the cell.
    """
    version = importlib.import_module(grid_.module).VERSION
    return cache.key("study-cell", {"study": grid_.study, "version": version, **cell})


def cached_rows(grid_: Grid, cell: dict) -> list[dict] | None:
    """A finished cell's rows from the cache.

    Returns:
        the list of row dicts, or None if the cell has not run (or its entry was damaged: then it
        is deleted, by `qlab.cache.get`, and the cell runs again).
    """
    payload = cache.get(cell_key(grid_, cell))
    if payload is None:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        cache.remove(cell_key(grid_, cell))
        return None


def run(grid_: Grid, n_jobs: int | None = None, backend: str = "loky", show: bool = True) -> pd.DataFrame:
    """Measure every cell of `grid_` not measured yet, and gather all the rows.

    Args:
        n_jobs: worker processes (default: one per core, at most one per cell to run); 1 runs the
            cells one after another in this process.
        backend: "loky" (processes on this machine).
        show: False hides the progress bar (one step per cell).

    Returns:
        one DataFrame of every cell's rows, in the order of the grid (columns: the study's).

    Raises:
        ValueError: an unknown backend, or n_jobs below 1; whatever a cell raises (the cells that
            finished before stay cached).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    done = {i: rows for i, cell in enumerate(grid_.cells) if (rows := cached_rows(grid_, cell)) is not None}
    todo = [i for i in range(len(grid_.cells)) if i not in done]
    cores = os.cpu_count() or 1
    n_jobs = min(cores, len(todo)) if n_jobs is None else n_jobs
    if n_jobs < 1 and todo:
        raise ValueError(f"n_jobs must be 1 or more, got {n_jobs}")
    module = importlib.import_module(grid_.module)
    pairs = list(dict.fromkeys((grid_.cells[i]["model"], grid_.cells[i]["seed"]) for i in todo))
    threads = max(1, cores // max(n_jobs, 1))
    with progress.bar(total=len(grid_.cells), desc=f"study {grid_.study}", show=show, initial=len(done)) as bar:
        if hasattr(module, "prepare") and pairs:  # what the cells of a (model, seed) share, once each
            for _ in _parallel(n_jobs, backend, [(_prepare, (grid_, pair, str(cache.cache_dir()), threads))
                                                 for pair in pairs]):
                pass
        jobs = [(_measure, (grid_, i, grid_.cells[i], str(cache.cache_dir()), threads)) for i in todo]
        for i, rows in _parallel(n_jobs, backend, jobs):
            done[i] = rows
            bar.update(1)
    return pd.DataFrame([row for i in range(len(grid_.cells)) for row in done[i]])


def _parallel(n_jobs: int, backend: str, jobs: list):
    """Run `jobs` ((function, args) pairs), yielding results as they finish."""
    if n_jobs == 1 or len(jobs) <= 1:
        for function, args in jobs:
            yield function(*args, in_process=True)
        return
    calls = (joblib.delayed(function)(*args) for function, args in jobs)
    # one cell per dispatch: cells are long, and each one's rows come back (and are cached) as it ends
    yield from joblib.Parallel(n_jobs=n_jobs, backend=backend, batch_size=1, return_as="generator_unordered")(calls)


def _worker(root: str, threads: int, in_process: bool):
    """In a worker process: TensorFlow's thread pools set to this worker's share of the cores
    (once, before TensorFlow runs anything there), and the caller's cache folder."""
    if not in_process and not _threads_set:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already ran here: keep its pools
            log.debug("TensorFlow's thread pools were set already in this worker")
        _threads_set.append(threads)
    return cache.use(root)


def _prepare(grid_: Grid, pair: tuple, root: str, threads: int, in_process: bool = False) -> None:
    with _worker(root, threads, in_process), progress.off():
        importlib.import_module(grid_.module).prepare(*pair)


def _measure(grid_: Grid, index: int, cell: dict, root: str, threads: int, in_process: bool = False):
    with _worker(root, threads, in_process), progress.off():
        rows = importlib.import_module(grid_.module).measure(dict(cell))
        cache.put(cell_key(grid_, cell), json.dumps(rows, default=_plain).encode(), {"study": grid_.study, **cell})
    return index, rows


def _plain(value):
    """NumPy scalars and arrays as JSON values (NaN stays NaN)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"a study row holds {type(value).__name__}, which is not a JSON value: {value!r}")


def spread(values) -> tuple[float, float, float]:
    """Median, minimum and maximum of `values`, NaN ignored.

    Returns:
        (median, min, max) as floats; all NaN if there is no finite value.
    """
    finite = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not finite:
        return math.nan, math.nan, math.nan
    return float(pd.Series(finite).median()), min(finite), max(finite)
