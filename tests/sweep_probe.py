"""A study that measures nothing heavy, for the sweep engine's tests: each cell records that it ran
(a file in the folder "runs" beside the cache in use) and returns rows computed from its seed and
setting, plus the TensorFlow thread count its process uses. Setting "die" kills the worker that runs
it, "kill-sweep" the sweep's own process (the worker's parent); "fail" raises."""

import os
import signal
import uuid
from pathlib import Path

from qlab.infra import cache

NAME = "probe"
MODELS = ("digits_cnn",)
SETTINGS = (1, 2, 3)
VERSION = 1


def runs() -> Path:
    """Where cells leave their marks: beside the cache the sweep passed to its worker (a worker's
    environment is the one it started with, so an environment variable could be stale)."""
    folder = cache.cache_dir().parent / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check(models, settings):
    if "bad" in settings:
        raise ValueError("probe: setting 'bad' is not a setting")


def prepare(model, seed):
    Path(runs(), f"prepare-{model}-{seed}").touch()


def measure(cell):
    setting = cell["setting"]
    if setting == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if setting == "kill-sweep":
        os.kill(os.getppid(), signal.SIGKILL)
        return []
    if setting == "fail":
        raise ValueError("probe: this cell fails")
    Path(
        runs(), f"{cell['model']}-{cell['seed']}-{setting}-{os.getpid()}-{uuid.uuid4().hex}"
    ).touch()
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads()
    return [
        {
            "model": cell["model"],
            "seed": cell["seed"],
            "setting": setting,
            "part": part,
            "value": cell["seed"] * 10 + setting + part / 10,
            "threads": threads,
        }
        for part in (0, 1)
    ]


def summary(table):
    return table.groupby("setting", as_index=False)["value"].median()


def headline(table):
    return f"{len(table)} rows"
