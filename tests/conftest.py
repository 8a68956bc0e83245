"""Shared fixtures. Trained models come from qlab's cache (data/cache/), so the suite and the
notebooks train each model once; `tiny_model` is a 1-epoch model for plumbing tests. Also: the
groups pytest-xdist runs together, the notebooks' kernels started with TensorFlow's C++ log fully
on, and `--built` for the tests that read what the notebook run and the site build wrote."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numeric_paths  # noqa: E402
import pytest  # noqa: E402

import qlab  # noqa: E402,F401  (TensorFlow itself loads with the first fixture that needs it)


def pytest_addoption(parser):
    parser.addoption(
        "--built",
        action="store_true",
        help="the executed notebooks (build/book/notebooks) and the site (build/site) are built: "
        "check them (make test's last step; without it those tests are skipped)",
    )


class NotebookKernelsLogEverything:
    """A notebook's kernel (nbmake starts it while the item runs, with this process's environment)
    runs with TF_CPP_MIN_LOG_LEVEL=0, TensorFlow's C++ log fully on: the notebook must quiet it
    itself, whatever the environment sets (docs/writing-notebooks.md), and
    tests/test_notebook_outputs.py reads the outputs. The tests' own processes keep their level.
    A plugin, not a hook of this file: this file's run hooks reach only the items under tests/."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        if item.path.suffix != ".ipynb":
            return (yield)
        before = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        try:
            return (yield)
        finally:
            if before is None:
                os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
            else:
                os.environ["TF_CPP_MIN_LOG_LEVEL"] = before


def pytest_configure(config):
    config.pluginmanager.register(NotebookKernelsLogEverything(), "qlab-notebook-kernels")
    numeric_paths.from_environment()


BY_MODEL = {"test_zoo.py": "zoo", "test_intmath_zoo.py": "name"}
"""Files whose tests are parametrized by zoo model (the parameter's name): grouped by model, so each
model is trained once, on one worker, and the models spread over the workers."""
SHARED = {
    "test_acceptance.py": "digits-seeds",
    "03_quantization_aware_training.ipynb": "digits-seeds",
    "test_zoo_command.py": "zoo-lstm_rows",
    "test_recurrent.py": "zoo-lstm_rows",
    "11_recurrent_models.ipynb": "zoo-lstm_rows",
    "test_pruning_clustering.py": "compression",
    "10_pruning_and_clustering.ipynb": "compression",
    "test_schemes.py": "qat-schemes",
    "test_bits_delay.py": "qat-schemes",
    "09_custom_qat_schemes.ipynb": "qat-schemes",
    "test_calibration.py": "calibration",
    "12_calibration.ipynb": "calibration",
    "test_explorer.py": "zoo-mobilenet_mini",
    "test_aeq.py": "aeq",
    "13_ai_edge_quantizer_and_mixed_precision.ipynb": "aeq",
}
"""Files that train the same models as another group, run on its worker after it, from the cache."""
HEAVIEST = (
    "digits-seeds",
    "zoo-lstm_rows",
    "compression",
    "qat-schemes",
    "test_reproduce.py",
    "zoo-resnet_mini",
    "zoo-mobilenet_mini",
    "test_artifacts.py",
    "zoo-inception_mini",
    "08_bring_your_own_model.ipynb",
    "test_sweep.py",
    "calibration",
)
"""Groups that take longest on a cold cache (`--durations`), started first so that the workers end
together (with `--no-loadscope-reorder`, groups start in the order of their first test); notebook
08 after the zoo groups, whose models it uses."""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """Groups for pytest-xdist's `--dist loadgroup` (`make test`): the zoo matrix by model, so
    its six models and their training spread over the workers; files that need the same models
    together; every other file whole, so a file's module fixtures are built once."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        model = params.get(BY_MODEL.get(item.path.name, ""))
        if model:
            group = f"zoo-{model}"
        else:
            group = SHARED.get(item.path.name, item.path.name)
        item.add_marker(pytest.mark.xdist_group(group))
        item.stash[GROUP] = group
    rank = {group: i for i, group in enumerate(HEAVIEST)}
    items.sort(
        key=lambda item: rank.get(item.stash[GROUP], len(rank))
    )  # stable: files keep their order


GROUP = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def digits():
    from qlab.training import data

    return data.load()


@pytest.fixture(scope="session")
def calibration(digits):
    from qlab.training import data

    return data.calibration(digits.x_train)


@pytest.fixture(scope="session")
def float_model(digits):
    from qlab import artifacts
    from qlab.training import fit

    return artifacts.trained(fit.TrainConfig(), digits, progress=False)


@pytest.fixture(scope="session")
def qat_model(digits):
    from qlab import artifacts
    from qlab.training import fit

    return artifacts.trained(fit.TrainConfig(training="qat"), digits, progress=False)


@pytest.fixture(scope="session")
def tiny_model(digits):
    from qlab import artifacts
    from qlab.training import fit

    return artifacts.trained(fit.TrainConfig(epochs=1), digits, progress=False)
