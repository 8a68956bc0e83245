"""A study that measures nothing heavy, for the sweep engine's tests: each cell records that it ran
(a file in $PROBE_DIR) and returns rows computed from its seed and setting, plus the TensorFlow
thread count its process uses. Setting "die" kills the process that runs it; "fail" raises."""

import os
import signal
import uuid
from pathlib import Path

NAME = "probe"
MODELS = ("digits_cnn",)
SETTINGS = (1, 2, 3)
VERSION = 1


def check(models, settings):
    if "bad" in settings:
        raise ValueError("probe: setting 'bad' is not a setting")


def prepare(model, seed):
    Path(os.environ["PROBE_DIR"], f"prepare-{model}-{seed}").touch()


def measure(cell):
    setting = cell["setting"]
    if setting == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if setting == "fail":
        raise ValueError("probe: this cell fails")
    Path(os.environ["PROBE_DIR"], f"{cell['model']}-{cell['seed']}-{setting}-{os.getpid()}-{uuid.uuid4().hex}").touch()
    threads = None
    if os.environ.get("PROBE_THREADS"):
        import tensorflow as tf

        threads = tf.config.threading.get_intra_op_parallelism_threads()
    return [{"model": cell["model"], "seed": cell["seed"], "setting": setting, "part": part,
             "value": cell["seed"] * 10 + setting + part / 10, "threads": threads} for part in (0, 1)]


def summary(table):
    return table.groupby("setting", as_index=False)["value"].median()


def headline(table):
    return f"{len(table)} rows"
