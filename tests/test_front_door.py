"""`qlab.__all__` is the front door: a few names for the main job, each documented, loaded on first
use; README's examples and notebook 08 import only from it."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import qlab

ROOT = Path(__file__).resolve().parents[1]
# besides the front door, what README's examples and notebook 08 may import: the workshop's checks,
# the setup's switch for TensorFlow's start-up lines (docs/writing-notebooks.md), third parties
ALSO = {"qlab_workshop.exercises": None, "qlab.infra": {"quiet"}}


def test_the_front_door_is_small_and_every_name_resolves_with_a_docstring():
    assert 10 <= len(qlab.__all__) <= 15
    assert len(set(qlab.__all__)) == len(qlab.__all__)
    for name in qlab.__all__:
        found = getattr(qlab, name)
        assert found.__doc__ and found.__doc__ != dict.__doc__, name
        assert f"`{name}`" in qlab.__doc__, f"qlab's docstring does not list {name}"


def test_an_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no attribute 'layer_error'"):
        qlab.layer_error  # noqa: B018


def test_no_front_door_name_stutters():
    for name in qlab.__all__:
        module, attribute = qlab._FRONT_DOOR[name]
        if attribute is not None:
            assert attribute != module.rsplit(".", 1)[-1], f"{module}.{attribute}"


def test_importing_qlab_loads_no_tensorflow():
    probe = "import sys, qlab; print([m for m in ('tensorflow', 'tf_keras') if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def imports_outside_the_front_door(source: str) -> list[str]:
    """The imports of `source` that reach into qlab past its front door."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("qlab") and a.name != "qlab"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qlab"):
            if node.module == "qlab":
                found += [f"qlab.{a.name}" for a in node.names if a.name not in qlab.__all__]
            elif node.module not in ALSO or (
                ALSO[node.module] and {a.name for a in node.names} - ALSO[node.module]
            ):
                found.append(node.module)
    return found


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_the_readme_examples_use_only_the_front_door():
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert blocks, "README shows no Python"
    for block in blocks:
        assert "import qlab" in block or "from qlab import" in block
        assert not imports_outside_the_front_door(block), block


def test_the_first_python_in_the_readme_comes_early():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    assert lines.index("```python") < 40


def test_notebook_08_uses_only_the_front_door():
    notebook = json.loads((ROOT / "notebooks" / "08_bring_your_own_model.ipynb").read_text())
    code = "\n".join(
        "".join(line for line in cell["source"] if not line.lstrip().startswith(("%", "!")))
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    )
    assert not imports_outside_the_front_door(code)
    assert not re.search(r"\bqlab\.(?!(" + "|".join([*qlab.__all__, "infra"]) + r")\b)\w+", code)


def test_the_outside_check_catches_a_deep_import():
    deep = "import qlab\nfrom qlab.analysis import per_layer\nfrom qlab import artifacts\n"
    assert imports_outside_the_front_door(deep) == ["qlab.analysis", "qlab.artifacts"]


def test_deeper_packages_load_by_name_and_dir_shows_the_front_door():
    probe = "import qlab; print(qlab.infra.progress.__name__, qlab.training.data.__name__)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["qlab.infra.progress", "qlab.training.data"], done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        qlab.infra.nope  # noqa: B018
    assert set(qlab.__all__) <= set(dir(qlab)) and "os" not in dir(qlab)
    assert "per_layer" in dir(qlab.analysis) and "litert" in dir(qlab.intmath)


@pytest.fixture(scope="module")
def small():
    """A two-class model on random data, and its float32 file."""
    import numpy as np
    import tf_keras as keras

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype("float32"), np.arange(40) % 2
    dataset = qlab.dataset(x[:30], y[:30], x[30:], y[30:], name="small")
    with qlab.fresh_names():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    return model, dataset, qlab.quantize(model, "float32", use_cache=False)


def test_accuracy_refuses_labels_it_would_misread(small):
    model, dataset, tflite = small
    x, y = dataset.x_test, dataset.y_test
    assert 0 <= qlab.accuracy(tflite, x, y) <= 1
    for bad in (y.reshape(-1, 1), y[:5], y.astype("float32")):
        with pytest.raises(ValueError, match="one integer label per sample"):
            qlab.accuracy(tflite, x, bad)
    for bad in (y + 1, y - 1):  # 1-based labels, or -1: no output scores them
        with pytest.raises(ValueError, match="pass labels in that range"):
            qlab.accuracy(tflite, x, bad)
    with pytest.raises(TypeError, match="read_bytes"):
        qlab.accuracy("model.tflite", x, y)


def test_accuracy_refuses_a_single_unit_head():
    import numpy as np
    import tf_keras as keras

    with qlab.fresh_names():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    tflite = qlab.quantize(model, "float32", use_cache=False)
    with pytest.raises(ValueError, match="binary or regression head"):
        qlab.accuracy(tflite, np.zeros((3, 4), "float32"), np.array([0, 1, 0]))


def test_train_and_quantize_say_what_they_take(small):
    import tf_keras as keras

    model, dataset, _ = small
    with pytest.raises(TypeError, match="load_model"):
        qlab.train("model.h5", dataset)
    with pytest.raises(TypeError, match="qlab.dataset"):
        qlab.train(model, (dataset.x_train, dataset.y_train))
    for settings in ({"epochs": 0}, {"epochs": 2.5}, {"learning_rate": -1.0}, {"batch_size": 0}):
        with pytest.raises(ValueError, match="epochs|learning_rate|batch_size"):
            qlab.train(model, dataset, use_cache=False, progress=False, **settings)
    with qlab.fresh_names():
        binary = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    with pytest.raises(ValueError, match="one output unit per class"):
        qlab.train(binary, dataset, use_cache=False, progress=False)
    with pytest.raises(ValueError, match="representative_dataset"):
        qlab.quantize(model, "full_integer", dataset, use_cache=False)
    with pytest.raises(TypeError, match="dataset.x_train"):
        qlab.representative_dataset(dataset)


def test_layer_errors_refuses_the_float_file_of_another_model(small):
    import tf_keras as keras

    model, dataset, _ = small
    int8 = qlab.quantize(model, "integer_only", dataset.x_train, use_cache=False)
    with qlab.fresh_names():
        other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.set_weights([w + 1 for w in model.get_weights()])
    with pytest.raises(ValueError, match="not the deployed model's"):
        qlab.layer_errors(int8, qlab.quantize(other, "float32", use_cache=False), dataset.x_test)


def test_a_loss_you_compiled_is_part_of_what_train_caches(small, tmp_path):
    import numpy as np

    from qlab.infra import cache

    model, dataset, _ = small
    start = model.get_weights()
    trained = {}
    with cache.use(tmp_path):
        for loss in (None, "mse"):
            model.set_weights(start)
            model.compile(loss=loss) if loss else setattr(model, "loss", None)
            trained[loss] = qlab.train(model, dataset, epochs=1, progress=False).get_weights()[0]
    model.set_weights(start)
    assert not np.array_equal(trained[None], trained["mse"])


def test_a_numpy_learning_rate_is_a_learning_rate(small, tmp_path):
    import numpy as np

    from qlab.infra import cache

    model, dataset, _ = small
    start = model.get_weights()
    with cache.use(tmp_path):
        qlab.train(model, dataset, epochs=1, learning_rate=np.float32(0.01), progress=False)
    model.set_weights(start)


def test_latency_refuses_what_it_cannot_time(small):
    import numpy as np

    from qlab.tflite import measure

    _, dataset, tflite = small
    for settings in ({"runs": 2.5}, {"runs": 0}, {"warmup": -1}):
        with pytest.raises(ValueError, match="whole number"):
            measure.latency(tflite, dataset.x_test, **settings)
    with pytest.raises(ValueError, match="at least one sample"):
        measure.latency(tflite, np.zeros((0, 4), "float32"))


def test_infinite_inputs_are_refused_like_nan(small):
    import numpy as np

    _, dataset, tflite = small
    for bad in (np.nan, np.inf, -np.inf):
        x = dataset.x_test.copy()
        x[0, 0] = bad
        with pytest.raises(ValueError, match="NaN or infinity"):
            qlab.accuracy(tflite, x, dataset.y_test)
