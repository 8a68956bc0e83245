"""The sweep engine under every study: a grid of independent cells (model × seed × setting), each
measured by the study's `measure` in a joblib worker process, each cell's rows cached as soon as
the cell ends, gathered into one tidy table.

- **Resumable.** A cell's rows are stored in qlab's cache (`qlab.infra.cache`, written atomically)
  by the worker that measured it, keyed by the study, its `VERSION`, the cell and the TensorFlow
  version.
  A rerun measures only the cells not stored yet; a killed sweep loses only the cells in flight.
- **Parallel.** Cells run in joblib's `loky` worker processes on this machine (one per core by
  default), each running TensorFlow on one thread (`THREADS`): workers do not fight over cores,
  and a cell's numbers do not depend on how many there are (float sums depend on the thread
  count).
- **Reproducible.** A cell seeds everything it trains (the study's duty), so its rows do not depend
  on which worker ran it or what ran there before; the table is in the order of the grid.
- **On a cluster.** `backend="dask"` runs the same cells on the workers of a dask cluster (`dask
  scheduler`, then `dask worker ADDRESS --nthreads 1` each), which store rows in the caller's cache
  folder: remote workers need it on a shared file system, at the same path.
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
import pandas as pd
from joblib.executor import get_memmapping_executor

from qlab import studies
from qlab.infra import cache, progress
from qlab.studies import cluster
from qlab.training import models

log = logging.getLogger(__name__)
BACKENDS = ("loky", "dask")
"""The joblib backends a sweep can use: "loky", processes on this machine; "dask", a dask
cluster's."""
# seconds for a dask scheduler to have a worker (to answer: `cluster.CONNECT_TIMEOUT`)
WORKERS_TIMEOUT = 10
THREADS = 1
"""TensorFlow threads per worker (intra-op and inter-op): one, so that cells do not fight over
cores and a cell's rows do not depend on how many workers there are."""
_threads_set: list[int] = []  # this process's TensorFlow thread count, once set


@dataclass(frozen=True)
class Grid:
    """The cells of one sweep: the study's name (`qlab.studies.STUDIES`), its module's dotted name
    (what the workers import) and one dict per cell, {"model", "seed", "setting": a JSON value}, in
    table order."""

    study: str
    module: str
    cells: tuple


def grid(study: str, names=None, seeds=(0, 1, 2, 3, 4), settings=None) -> Grid:
    """The grid of study `study`: every model × seed × setting (default: the study's `MODELS` and
    `SETTINGS`), checked before anything runs.

    Returns:
        the `Grid`.

    Raises:
        ValueError: an unknown study (listing them), an unknown model (listing the zoo), no seeds or
            a bad one (whole numbers in 0..2**32 - 1), a seed or setting given twice, or what the
            study's `check` refuses."""
    module = studies.get(study)
    names = list(module.MODELS if names is None else names)
    for name in names:
        models.get(name)  # an unknown model: ValueError listing the zoo
    seeds, settings = list(seeds), list(module.SETTINGS if settings is None else settings)
    _check_cells(study, names, seeds, settings)
    module.check(names, settings)
    cells = tuple(
        {"model": m, "seed": s, "setting": x} for m in names for s in seeds for x in settings
    )
    return Grid(study, module.__name__, cells)


def _check_cells(study: str, names: list, seeds: list, settings: list) -> None:
    if not seeds or not names or not settings:
        raise ValueError(f"study {study}: give at least one model, seed and setting")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be a whole number in 0..2**32 - 1, got {seed!r}")
    for what, values in (
        ("model", names),
        ("seed", seeds),
        ("setting", [json.dumps(s) for s in settings]),
    ):
        if len(set(values)) != len(values):
            raise ValueError(f"study {study}: each {what} once, got {values}")


def cell_key(grid_: Grid, cell: dict) -> str:
    """Returns the cache name of one cell's rows: a `qlab.infra.cache.key` of kind "study-cell" over
    the study, its VERSION and the cell."""
    version = importlib.import_module(grid_.module).VERSION
    return cache.key("study-cell", {"study": grid_.study, "version": version, **cell})


def cached_rows(grid_: Grid, cell: dict) -> list[dict] | None:
    """Returns a finished cell's row dicts from the cache, or None if the cell has not run (or its
    entry was damaged: then it is deleted, and the cell runs again)."""
    payload = cache.get(cell_key(grid_, cell))
    if payload is None:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        cache.remove(cell_key(grid_, cell))
        return None


def check_backend(
    backend: str = "loky", scheduler: str | None = None, n_jobs: int | None = None
) -> None:
    """Check a backend, a dask scheduler's address and a worker count, before anything runs.

    Raises:
        ValueError: an unknown backend; n_jobs not a whole number of 1 or more; dask without a
            scheduler or with n_jobs; a scheduler with loky. Each message says what to do.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1
    ):
        raise ValueError(f"n_jobs must be a whole number of 1 or more, got {n_jobs!r}")
    if backend == "dask" and not scheduler:
        raise ValueError(
            "backend dask needs a dask scheduler's address (--scheduler ADDRESS, e.g. "
            "tcp://127.0.0.1:8786); start one with `dask scheduler` and workers with "
            "`dask worker ADDRESS --nthreads 1`"
        )
    if backend == "dask" and n_jobs is not None:
        raise ValueError(
            f"n_jobs (--jobs) is loky's worker count, got {n_jobs}; on dask the cluster's "
            "workers run the cells: leave it out and start as many `dask worker`s as you want"
        )
    if backend == "loky" and scheduler is not None:
        raise ValueError(
            f"a scheduler ({scheduler}) is for backend dask; loky runs its workers on this "
            "machine: leave out --scheduler, or add --backend dask"
        )


def run(
    grid_: Grid,
    n_jobs: int | None = None,
    backend: str = "loky",
    show: bool = True,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Measure every cell of `grid_` not measured yet, in worker processes, and gather all the rows.

    Every cell runs in a worker with one TensorFlow thread (`THREADS`), so that it gives the same
    rows with `--jobs 1` or `--jobs 8`, on loky or on dask. `n_jobs` defaults to one loky worker
    per core, at most one per cell to run; dask workers write to this process's cache folder, which
    must be on a shared file system.

    Returns:
        one DataFrame of every cell's rows, in the order of the grid (columns: the study's).

    Raises:
        ValueError: see `check_backend`; a dask scheduler not reached within
            `cluster.CONNECT_TIMEOUT` s, without workers, or with workers of several threads;
            whatever a cell raises. A dead worker ends the sweep (loky: `TerminatedWorkerError`).
            Finished cells stay cached."""
    check_backend(backend, scheduler, n_jobs)
    done = {
        i: rows
        for i, cell in enumerate(grid_.cells)
        if (rows := cached_rows(grid_, cell)) is not None
    }
    todo = [i for i in range(len(grid_.cells)) if i not in done]
    n_jobs = max(1, min(n_jobs or os.cpu_count() or 1, len(todo)))
    root = os.path.abspath(cache.cache_dir())
    with (
        _pool(backend, scheduler) as client,
        progress.bar(
            total=len(grid_.cells), desc=f"study {grid_.study}", show=show, initial=len(done)
        ) as bar,
    ):
        _prepare(grid_, [grid_.cells[i] for i in todo], n_jobs, client, root)
        for i, rows in _parallel(
            n_jobs, client, [joblib.delayed(_measure)(grid_, i, grid_.cells[i], root) for i in todo]
        ):
            done[i] = rows
            bar.update(1)
    return pd.DataFrame([row for i in range(len(grid_.cells)) for row in done[i]])


def prepare(
    grid_: Grid, n_jobs: int | None = None, backend: str = "loky", scheduler: str | None = None
) -> int:
    """Build what the cells of `grid_` share (the study's `prepare`, once per `prepare_key`) in
    workers, as `run` would, measuring no cell (e.g. to warm a cache before timing sweeps).

    Returns the number of `prepare` calls made (0 if the study has no `prepare`). Raises ValueError
    as `run`."""
    check_backend(backend, scheduler, n_jobs)
    with _pool(backend, scheduler) as client:
        return _prepare(
            grid_,
            grid_.cells,
            n_jobs or os.cpu_count() or 1,
            client,
            os.path.abspath(cache.cache_dir()),
        )


def _prepare(grid_: Grid, cells, n_jobs: int, client, root: str) -> int:
    """The study's `prepare` once per `prepare_key` of `cells` (default: (model, seed))."""
    module = importlib.import_module(grid_.module)
    if not hasattr(module, "prepare"):
        return 0
    key = getattr(module, "prepare_key", lambda model, seed: (model, seed))
    pairs = {}
    for cell in cells:
        pairs.setdefault(
            json.dumps(key(cell["model"], cell["seed"]), default=str), (cell["model"], cell["seed"])
        )
    calls = [joblib.delayed(_prepare_one)(grid_, pair, root) for pair in pairs.values()]
    list(_parallel(n_jobs, client, calls))  # the cells' pool size: loky keeps the same workers
    return len(calls)


def _parallel(n_jobs: int, client, calls: list):
    """Run joblib `calls` on loky's workers or on `client`'s dask cluster, yielding as they end."""
    if not calls:
        return iter(())
    # one cell per dispatch: cells are long, and each one's rows come back (and are cached) as it
    # ends
    if client is not None and sum(client.nthreads().values()) > 1:  # the cluster decides
        return joblib.Parallel(batch_size=1, return_as="generator_unordered")(calls)
    if n_jobs == 1 or client is not None:  # joblib would run these in this process, one at a time
        # dask's one worker, or the pool of joblib's loky backend
        executor = client or get_memmapping_executor(1)
        return (
            executor.submit(function, *args, **kwargs).result() for function, args, kwargs in calls
        )
    return joblib.Parallel(
        n_jobs=n_jobs, backend="loky", batch_size=1, return_as="generator_unordered"
    )(calls)


@contextlib.contextmanager
def _pool(backend: str, scheduler: str | None):
    """dask: joblib's dask backend for the block, on `scheduler`'s client it yields (loky: None)."""
    if backend != "dask":
        yield None
        return
    start = f"`dask worker {scheduler} --nthreads 1`"
    client = cluster.connect(scheduler)  # ValueError within seconds, whatever the address
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
        wrong = [
            f"dask worker {w} runs {n} threads"
            for w, n in client.nthreads().items()
            if n != THREADS
        ]
    except (OSError, TimeoutError):
        wrong = [f"the dask scheduler at {scheduler} has no worker after {WORKERS_TIMEOUT} s"]
    try:
        if wrong:
            raise ValueError(
                f"{wrong[0]}; start workers with {start}, each runs one cell at a time"
            )
        with joblib.parallel_config(backend="dask", client=client):
            yield client
    finally:
        client.close()


@contextlib.contextmanager
def _worker(root: str):
    """In a worker process: TensorFlow's thread pools set to `THREADS` (once, before TensorFlow
    runs anything), the caller's cache folder, no bars; then Keras' session cleared."""
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


def _prepare_one(grid_: Grid, pair: tuple, root: str) -> None:
    with _worker(root):
        importlib.import_module(grid_.module).prepare(*pair)


def _measure(grid_: Grid, index: int, cell: dict, root: str):
    with _worker(root):
        rows = importlib.import_module(grid_.module).measure(dict(cell))
        cache.put(
            cell_key(grid_, cell),
            json.dumps(rows, default=_plain).encode(),
            {"study": grid_.study, **cell},
        )
    return index, rows


def _plain(value):
    """NumPy scalars and arrays as JSON values (NaN stays NaN)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(
        f"a study row holds {type(value).__name__}, which is not a JSON value: {value!r}"
    )


def spread(values) -> tuple[float, float, float]:
    """Returns (median, min, max) of `values` as floats, NaN ignored; all NaN if none is finite."""
    finite = [
        float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]
    if not finite:
        return math.nan, math.nan, math.nan
    return float(pd.Series(finite).median()), min(finite), max(finite)
