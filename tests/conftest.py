"""Shared fixtures. Trained models come from qlab's cache (data/cache/), so the suite and the
notebooks train each model once; `tiny_model` is a 1-epoch model for plumbing tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import qlab  # noqa: E402,F401
from qlab import artifacts, data, train  # noqa: E402


BY_MODEL = {"test_zoo.py": "zoo", "test_intmath_zoo.py": "name"}
"""Files whose tests are parametrized by zoo model (the parameter's name): grouped by model, so each
model is trained once, on one worker, and the models spread over the workers."""
SHARED = {"test_bands.py": "digits-seeds", "03_quantization_aware_training.ipynb": "digits-seeds",
          "test_zoo_command.py": "zoo-lstm_rows", "test_recurrent.py": "zoo-lstm_rows",
          "11_recurrent_models.ipynb": "zoo-lstm_rows",
          "test_pruning_clustering.py": "compression", "10_pruning_and_clustering.ipynb": "compression",
          "test_schemes.py": "qat-schemes", "test_bits_delay.py": "qat-schemes",
          "09_custom_qat_schemes.ipynb": "qat-schemes",
          "test_calibration.py": "calibration", "12_calibration.ipynb": "calibration",
          "test_aeq.py": "aeq", "13_ai_edge_quantizer_and_mixed_precision.ipynb": "aeq"}
"""Files that train the same models as another group, run on its worker after it, from the cache."""
HEAVIEST = ("digits-seeds", "zoo-lstm_rows", "compression", "qat-schemes", "test_reproduce.py", "zoo-resnet_mini",
            "zoo-mobilenet_mini", "test_artifacts.py", "zoo-inception_mini", "08_bring_your_own_model.ipynb",
            "test_sweep.py", "calibration")
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
    items.sort(key=lambda item: rank.get(item.stash[GROUP], len(rank)))  # stable: files keep their order


GROUP = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def digits():
    return data.load()


@pytest.fixture(scope="session")
def calibration(digits):
    return data.calibration(digits.x_train)


@pytest.fixture(scope="session")
def float_model(digits):
    return artifacts.trained(train.TrainConfig(), digits, progress=False)


@pytest.fixture(scope="session")
def qat_model(digits):
    return artifacts.trained(train.TrainConfig(training="qat"), digits, progress=False)


@pytest.fixture(scope="session")
def tiny_model(digits):
    return artifacts.trained(train.TrainConfig(epochs=1), digits, progress=False)
