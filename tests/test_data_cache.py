"""The built-in data sets are stored in qlab's cache once built: a later process reads them without
importing scikit-learn, gets the same arrays, and rebuilds a damaged entry."""

import subprocess
import sys

import numpy as np

from qlab.infra import cache
from qlab.training import data

PROBE = (
    "import sys, qlab; from qlab.training import data; d = data.load(); "
    "print('sklearn' in sys.modules, int(d.x_train.sum()), int(d.y_test.sum()))"
)


def test_a_stored_set_loads_without_scikit_learn_and_equals_the_built_one(tmp_path):
    env = {"QLAB_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    second = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    assert first.stdout.split()[0] == "True" and second.stdout.split()[0] == "False"
    assert first.stdout.split()[1:] == second.stdout.split()[1:]


def test_a_damaged_entry_is_rebuilt(tmp_path):
    with cache.use(tmp_path):
        built = data._stored("wine")
        (entry,) = [p for p in tmp_path.iterdir() if p.suffix == ".bin"]
        entry.write_bytes(b"not an npz")
        again = data._stored("wine")
    for split in data.SPLITS:
        np.testing.assert_array_equal(getattr(built, split), getattr(again, split))
