"""The sweep engine: a grid of cells run in worker processes (loky, or a dask cluster), each cell
cached as it ends, a rerun skipping finished cells, a killed sweep losing only the cells in flight,
one tidy table; preparation shared across seeds; the sweep-bench command."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from qlab import studies
from qlab.infra import cache
from qlab.studies import sweep

HERE = Path(__file__).resolve().parent


@pytest.fixture
def probe(monkeypatch, tmp_path):
    monkeypatch.setitem(studies.STUDIES, "probe", "sweep_probe")
    monkeypatch.setitem(studies.STUDIES, "probe-shared", "sweep_probe_shared")
    (tmp_path / "runs").mkdir()
    with cache.use(tmp_path / "cache"):
        yield tmp_path / "runs"


def ran(runs: Path) -> list[str]:
    return sorted(
        p.name.rsplit("-", 2)[0] for p in runs.iterdir() if not p.name.startswith("prepare")
    )


def test_grid_is_checked_before_anything_runs(probe):
    with pytest.raises(ValueError, match="unknown study 'nope'; the studies are: bits"):
        sweep.grid("nope")
    with pytest.raises(ValueError, match="unknown model"):
        sweep.grid("probe", ["resnet_max"])
    with pytest.raises(ValueError, match="setting 'bad'"):
        sweep.grid("probe", settings=[1, "bad"])
    with pytest.raises(ValueError, match="each seed once"):
        sweep.grid("probe", seeds=[1, 1])
    with pytest.raises(ValueError, match="at least one"):
        sweep.grid("probe", seeds=[])
    with pytest.raises(ValueError, match="seed must be"):
        sweep.grid("probe", seeds=[-1])
    assert list(os.listdir(probe)) == []


def test_rerun_skips_finished_cells_and_gives_the_same_table(probe):
    grid = sweep.grid("probe", seeds=[0, 1], settings=[1, 2])
    first = sweep.run(grid, n_jobs=1, show=False)
    assert list(first.columns) == ["model", "seed", "setting", "part", "value", "threads"]
    assert first[["seed", "setting"]].drop_duplicates().values.tolist() == [
        [0, 1],
        [0, 2],
        [1, 1],
        [1, 2],
    ]
    assert len(ran(probe)) == 4 and {p.name for p in probe.glob("prepare-*")} == {
        "prepare-digits_cnn-0",
        "prepare-digits_cnn-1",
    }
    second = sweep.run(grid, n_jobs=1, show=False)
    assert len(ran(probe)) == 4  # nothing measured again
    assert second.equals(first)
    bigger = sweep.run(sweep.grid("probe", seeds=[0, 1], settings=[1, 2, 3]), n_jobs=1, show=False)
    assert len(ran(probe)) == 6 and bigger.loc[bigger.setting != 3].reset_index(drop=True).equals(
        first
    )


def test_a_damaged_cell_entry_is_measured_again(probe):
    grid = sweep.grid("probe", seeds=[0], settings=[1, 2])
    first = sweep.run(grid, n_jobs=1, show=False)
    name = sweep.cell_key(grid, grid.cells[1])
    payload = cache.cache_dir() / f"{name}.bin"
    assert payload.exists()
    payload.write_bytes(payload.read_bytes()[:5])  # cut off
    again = sweep.run(grid, n_jobs=1, show=False)
    assert ran(probe).count("digits_cnn-0-2") == 2 and ran(probe).count("digits_cnn-0-1") == 1
    assert again.equals(first)


def test_a_failing_cell_keeps_the_cells_before_it(probe):
    with pytest.raises(ValueError, match="this cell fails"):
        sweep.run(sweep.grid("probe", seeds=[0], settings=[1, 2, "fail"]), n_jobs=1, show=False)
    sweep.run(sweep.grid("probe", seeds=[0], settings=[1, 2]), n_jobs=1, show=False)
    assert ran(probe) == ["digits_cnn-0-1", "digits_cnn-0-2"]  # each measured once


def test_a_killed_sweep_loses_only_the_cells_in_flight(probe, tmp_path):
    script = (
        "from qlab import studies; from qlab.studies import sweep; "
        "studies.STUDIES['probe'] = 'sweep_probe'; "
        "sweep.run(sweep.grid('probe', seeds=[0], settings=[1, 2, 'kill-sweep', 3]), "
        "n_jobs=1, show=False)"
    )
    env = {**os.environ, "PYTHONPATH": str(HERE), "QLAB_CACHE": str(tmp_path / "cache")}
    killed = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )  # an orphaned worker may hold pipes open
    assert killed.returncode == -9
    assert ran(probe)[:2] == ["digits_cnn-0-1", "digits_cnn-0-2"]  # finished before the kill
    table = sweep.run(sweep.grid("probe", seeds=[0], settings=[1, 2, 3]), n_jobs=1, show=False)
    assert ran(probe) == [
        "digits_cnn-0-1",
        "digits_cnn-0-2",
        "digits_cnn-0-3",
    ]  # none measured twice
    assert table.value.tolist() == [1, 1.1, 2, 2.1, 3, 3.1]


def test_a_worker_that_dies_ends_the_sweep_and_keeps_finished_cells(probe):
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    with pytest.raises(TerminatedWorkerError):
        sweep.run(sweep.grid("probe", seeds=[0], settings=[1, "die"]), n_jobs=1, show=False)
    sweep.run(sweep.grid("probe", seeds=[0], settings=[1, 2]), n_jobs=1, show=False)
    assert ran(probe) == ["digits_cnn-0-1", "digits_cnn-0-2"]


def test_workers_run_one_thread_each_and_any_number_gives_the_same_table(probe):
    grid = sweep.grid("probe", seeds=[0, 1, 2], settings=[1, 2])
    table = sweep.run(grid, n_jobs=2, show=False)
    pids = {p.name.rsplit("-", 2)[1] for p in probe.iterdir() if not p.name.startswith("prepare")}
    assert pids and str(os.getpid()) not in pids  # worker processes did the work
    assert set(table.threads) == {sweep.THREADS} == {1}
    with cache.use(probe.parent / "other" / "cache"):
        alone = sweep.run(grid, n_jobs=1, show=False)
    assert table.equals(alone)


def test_bad_jobs_are_refused(probe):
    grid = sweep.grid("probe", seeds=[0], settings=[1])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs must be a whole number of 1 or more"):
            sweep.run(grid, n_jobs=bad, show=False)
    with pytest.raises(ValueError, match="unknown backend 'threads'; valid: loky, dask"):
        sweep.run(grid, backend="threads", show=False)
    with pytest.raises(
        ValueError, match="backend dask needs a dask scheduler's address.*dask worker ADDRESS"
    ):
        sweep.run(grid, backend="dask", show=False)
    with pytest.raises(
        ValueError, match="is for backend dask; loky runs its workers on this machine"
    ):
        sweep.run(grid, scheduler="tcp://127.0.0.1:8786", show=False)
    with pytest.raises(ValueError, match=r"n_jobs \(--jobs\) is loky's worker count, got 2"):
        sweep.run(grid, n_jobs=2, backend="dask", scheduler="tcp://127.0.0.1:8786", show=False)
    assert ran(probe) == []


def test_seeds_that_share_a_prepare_key_are_prepared_once(probe):
    grid = sweep.grid("probe-shared", seeds=[3, 1, 2], settings=[1, 2])
    table = sweep.run(grid, n_jobs=1, show=False)
    assert sorted(p.name for p in probe.glob("prepare-*")) == [
        "prepare-digits_cnn-3"
    ]  # the key's first pair
    assert (
        len(ran(probe)) == 6
        and table.value.tolist()
        == sweep.run(
            sweep.grid("probe", seeds=[3, 1, 2], settings=[1, 2]), n_jobs=1, show=False
        ).value.tolist()
    )
    assert (
        sweep.prepare(grid, n_jobs=1) == 1
        and sweep.prepare(sweep.grid("probe", seeds=[3, 1, 2]), n_jobs=1) == 3
    )
    assert len(ran(probe)) == 12  # prepare measures nothing


def test_importing_qlab_loads_no_dask():
    probe = (
        "import sys, qlab, qlab.studies.sweep, qlab.__main__; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_a_dask_cluster_gives_the_loky_table_and_caches_every_cell(probe):
    from dask.distributed import LocalCluster

    grid = sweep.grid("probe", seeds=[0, 1], settings=[1, 2])
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        table = sweep.run(grid, backend="dask", scheduler=cluster.scheduler_address, show=False)
        assert len(ran(probe)) == 4 and {p.name for p in probe.glob("prepare-*")} == {
            "prepare-digits_cnn-0",
            "prepare-digits_cnn-1",
        }
        pids = {
            p.name.rsplit("-", 2)[1] for p in probe.iterdir() if not p.name.startswith("prepare")
        }
        assert pids and str(os.getpid()) not in pids  # the cluster's worker processes did the work
        again = sweep.run(grid, backend="dask", scheduler=cluster.scheduler_address, show=False)
        assert len(ran(probe)) == 4 and again.equals(table)  # every cell came from the cache
        cluster.scale(
            1
        )  # one worker of one thread: joblib would run the cells here, so the engine must not
        deadline = time.monotonic() + 10
        while len(cluster.scheduler_info["workers"]) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(cluster.scheduler_info["workers"]) == 1
        more = sweep.run(
            sweep.grid("probe", seeds=[2], settings=[1]),
            backend="dask",
            scheduler=cluster.scheduler_address,
            show=False,
        )
    assert len(ran(probe)) == 5 and more.value.tolist() == [21, 21.1]
    pids = {p.name.rsplit("-", 2)[1] for p in probe.iterdir() if not p.name.startswith("prepare")}
    assert str(os.getpid()) not in pids and len(pids) <= 2
    # the rows loky gives (each cell's values follow from its seed and setting:
    # tests/sweep_probe.py)
    expected = [c["seed"] * 10 + c["setting"] + part / 10 for c in grid.cells for part in (0, 1)]
    assert table.value.tolist() == expected and set(table.threads) == {1}


def test_a_dask_scheduler_that_cannot_be_used_fails_within_seconds(probe):
    from dask.distributed import LocalCluster

    grid = sweep.grid("probe", seeds=[0], settings=[1])
    started = time.perf_counter()
    with pytest.raises(
        ValueError,
        match=r"could not reach the dask scheduler at tcp://127.0.0.1:9 within 5 s .*"
        r"`dask scheduler` and workers with `dask worker tcp://127.0.0.1:9 --nthreads 1`",
    ):
        sweep.run(grid, backend="dask", scheduler="tcp://127.0.0.1:9", show=False)
    assert time.perf_counter() - started < 10
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        with pytest.raises(
            ValueError, match="runs 2 threads; start workers with `dask worker .* --nthreads 1`"
        ):
            sweep.run(grid, backend="dask", scheduler=cluster.scheduler_address, show=False)
    assert ran(probe) == []


def test_sweep_bench_times_one_and_two_workers_from_a_warm_cache(
    probe, tmp_path, capsys, monkeypatch
):
    """The command end to end, the calls meant for its pools made in this process, each in the cache
    folder the engine hands its workers: the worker processes themselves (one TensorFlow thread,
    clean-up after each cell) are the tests above's, and fresh ones for each of the command's runs
    cost this test most of 20 s."""
    from qlab.__main__ import main

    pools = []

    def in_this_process(n_jobs, client, calls):
        pools.append(n_jobs)
        return (function(*args, **kwargs) for function, args, kwargs in calls)

    monkeypatch.setattr(sweep, "_parallel", in_this_process)
    monkeypatch.setattr(sweep, "_worker", cache.use)
    out = tmp_path / "out"
    argv = [
        "sweep-bench",
        "probe",
        "--seeds",
        "0",
        "1",
        "--settings",
        "1",
        "2",
        "--rounds",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert pools[1:] == [
        1,
        1,
        2,
        2,
    ]  # after the warm cache's preparation: each run's prepare and cells on its pool
    runs = pd.read_csv(out / "sweep_bench_probe.csv")
    assert list(runs.columns) == ["round", "jobs", "seconds"] and runs[
        ["round", "jobs"]
    ].values.tolist() == [[1, 1], [1, 2]]
    assert (runs.seconds > 0).all()
    report = capsys.readouterr().out
    for part in (
        "Sweep bench probe: 4 cells (1 model × 2 seeds × 2 settings), 1 round(s)",
        "1 worker :",
        "2 workers:",
        "cells/min",
        "speed-up 1→2 workers:",
        "tables identical across runs: yes",
        f"Wrote {out / 'sweep_bench_probe.csv'}",
    ):
        assert part in report, report
    warm = cache.cache_dir() / "sweep-bench" / "probe"
    assert {p.name for p in (warm.parent / "runs").iterdir()} == {
        "prepare-digits_cnn-0",
        "prepare-digits_cnn-1",
    }
    assert not list(warm.glob("study-cell-*")) and ran(probe) == []  # cells ran only in the copies


def test_models_trained_on_other_threads_are_cached_apart(monkeypatch):
    """A study worker trains on one thread, a notebook on TensorFlow's default pool: their models
    differ in the last bits, so they must not share a cache entry (whichever came first would
    serve both)."""
    import tensorflow as tf

    from qlab import artifacts
    from qlab.training import data, fit
    from qlab.training.fit import TrainConfig

    saw = []
    monkeypatch.setattr(
        artifacts.cache, "cached", lambda kind, key, *a, **k: saw.append((kind, key))
    )
    artifacts.trained(TrainConfig(), data.load())
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: 1)
    assert fit.thread_key() == {"intra_op_threads": 1}
    artifacts.trained(TrainConfig(), data.load())
    (_, default), (_, one) = saw
    assert "intra_op_threads" not in default and one == {**default, "intra_op_threads": 1}
