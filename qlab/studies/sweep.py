"""The sweep engine under every study: a grid of independent cells (model × seed × setting), each
measured by the study's `measure` in a joblib worker process, each cell's rows cached as soon as
the cell ends, gathered into one tidy table.

- **Resumable.** A cell's rows are stored in qlab's cache (`qlab.cache`, written atomically) by the
  worker that measured it, keyed by the study, its `VERSION`, the cell and the TensorFlow version.
  A rerun measures only the cells not stored yet; a killed sweep loses only the cells in flight.
- **Parallel.** Cells run through joblib's `loky` process backend on this machine (one process
  per core by default). Each worker runs TensorFlow on one thread (`THREADS`,
  `tf.config.threading`), so workers do not fight over cores and a cell's numbers are the same
  whatever the number of workers (TensorFlow's float sums depend on how many threads split them).
- **Reproducible.** A cell seeds everything it trains (the study's duty), so its rows do not depend
  on which worker ran it or what ran there before; the table is in the order of the grid.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import math
import os
from dataclasses import dataclass

import joblib
from joblib.executor import get_memmapping_executor
import pandas as pd

from qlab import cache, models, progress, studies

log = logging.getLogger(__name__)
BACKENDS = ("loky",)
"""The joblib backends a sweep can use: worker processes on this machine."""
THREADS = 1
"""TensorFlow threads per worker (intra-op and inter-op): one, so that cells do not fight over cores
and a cell's rows do not depend on how many workers there are."""
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
    """Measure every cell of `grid_` not measured yet, in worker processes, and gather all the rows.

    Every cell runs in a worker with one TensorFlow thread (`THREADS`), however many workers there
    are: a model's float sums depend on how many threads split them, so the same cell gives the
    same rows with `--jobs 1` or `--jobs 8`.

    Args:
        n_jobs: worker processes (default: one per core, at most one per cell to run).
        backend: "loky" (processes on this machine).
        show: False hides the progress bar (one step per cell).

    Returns:
        one DataFrame of every cell's rows, in the order of the grid (columns: the study's).

    Raises:
        ValueError: an unknown backend, or n_jobs below 1; whatever a cell raises (the cells that
            finished before stay cached). A worker that dies (killed, out of memory) ends the
            sweep with joblib's `TerminatedWorkerError`; finished cells stay cached.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1):
        raise ValueError(f"n_jobs must be a whole number of 1 or more, got {n_jobs!r}")
    done = {i: rows for i, cell in enumerate(grid_.cells) if (rows := cached_rows(grid_, cell)) is not None}
    todo = [i for i in range(len(grid_.cells)) if i not in done]
    n_jobs = max(1, min(n_jobs or os.cpu_count() or 1, len(todo)))
    module = importlib.import_module(grid_.module)
    pairs = list(dict.fromkeys((grid_.cells[i]["model"], grid_.cells[i]["seed"]) for i in todo))
    root = str(cache.cache_dir())
    with progress.bar(total=len(grid_.cells), desc=f"study {grid_.study}", show=show, initial=len(done)) as bar:
        if hasattr(module, "prepare") and pairs:  # what the cells of a (model, seed) share, once each
            for _ in _parallel(n_jobs, backend, [joblib.delayed(_prepare)(grid_, pair, root) for pair in pairs]):
                pass
        for i, rows in _parallel(n_jobs, backend, [joblib.delayed(_measure)(grid_, i, grid_.cells[i], root)
                                                   for i in todo]):
            done[i] = rows
            bar.update(1)
    return pd.DataFrame([row for i in range(len(grid_.cells)) for row in done[i]])


def _parallel(n_jobs: int, backend: str, calls: list):
    """Run joblib `calls` in worker processes, yielding results as they finish."""
    if not calls:
        return iter(())
    if n_jobs == 1:  # joblib would run these in this process; one worker keeps one thread per cell
        executor = get_memmapping_executor(1)  # the worker pool joblib's loky backend uses
        return (executor.submit(function, *args, **kwargs).result() for function, args, kwargs in calls)
    # one cell per dispatch: cells are long, and each one's rows come back (and are cached) as it ends
    return joblib.Parallel(n_jobs=n_jobs, backend=backend, batch_size=1, return_as="generator_unordered")(calls)


@contextlib.contextmanager
def _worker(root: str):
    """In a worker process: TensorFlow's thread pools set to `THREADS` (once, before TensorFlow runs
    anything there), the caller's cache folder, no progress bars; afterwards Keras' session cleared,
    so that cells do not pile up graphs in a worker that runs many."""
    import tf_keras

    if not _threads_set:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(THREADS)
        except RuntimeError:  # TensorFlow already ran here: keep its pools
            log.debug("TensorFlow's thread pools were set already in this worker")
        _threads_set.append(THREADS)
    try:
        with cache.use(root), progress.off():
            yield
    finally:
        tf_keras.backend.clear_session()
        gc.collect()


def _prepare(grid_: Grid, pair: tuple, root: str) -> None:
    with _worker(root):
        importlib.import_module(grid_.module).prepare(*pair)


def _measure(grid_: Grid, index: int, cell: dict, root: str):
    with _worker(root):
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
