"""The artifacts layer: the same configuration gives the same bytes in any process, and the library
stays silent unless progress bars are on (and then writes them to stderr only)."""

import os
import shutil
import subprocess
import sys

import pytest

from qlab import artifacts
from qlab.infra import cache, progress

OTHER_MODELS_FIRST = """
import sys
import qlab
from qlab import artifacts
from qlab.infra import cache
from qlab.training import models, fit
from qlab.conversion import to_tflite
# a history the pytest process does not have: other models, QAT wrappers and a conversion first
for _ in range(2):
    to_tflite.quantize(fit.quantize_aware(models.build("digits_cnn")), "integer_only",
                      __import__("qlab").representative_dataset(n=4))
    models.build("digits_cnn")
with cache.use(sys.argv[1]):
    for (training, mode), tflite in artifacts.convert_all(progress=False).items():
        open(f"{sys.argv[2]}/{training}-{mode}.tflite", "wb").write(tflite)
"""


@pytest.fixture(scope="module")
def weights_only(tmp_path_factory, float_model, qat_model):
    """A cache holding the trained weights of the plan's models, and no converted file."""
    root = tmp_path_factory.mktemp("weights-only")
    for record in cache.cache_dir().glob("model-*.json"):
        for path in (record, record.with_suffix(".bin")):
            shutil.copy(path, root / path.name)
    return root


def test_same_bytes_for_every_training_and_mode_whatever_the_process_built_before(
    weights_only, tmp_path
):
    """Converted here, in the suite's process, and in a new process that built other models first,
    from the same trained weights (tests/test_reproduce.py retrains them in a new process)."""
    ours = artifacts.convert_all(progress=False)
    out = tmp_path / "there"
    out.mkdir()
    there = tmp_path / "there-cache"
    shutil.copytree(weights_only, there)
    result = subprocess.run(
        [sys.executable, "-c", OTHER_MODELS_FIRST, str(there), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(ours) == 10
    for (training, mode), tflite in ours.items():
        assert (out / f"{training}-{mode}.tflite").read_bytes() == tflite, (training, mode)


def test_keras_names_resume_after_a_fresh_names_block():
    import tf_keras as keras

    from qlab.training import models

    before = keras.layers.Dense(2).name
    with models.fresh_names():
        assert keras.layers.Dense(2).name == "dense"
    after = keras.layers.Dense(2).name
    assert before != after and after.startswith("dense_")  # counting went on as if nothing happened


def test_library_is_silent_with_progress_off(capsys, calibration):
    with progress.off():
        artifacts.measure_models([("float", "float32"), ("float", "integer_only")], runs=5)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bars_go_to_stderr_and_logs_to_the_qlab_logger(capsys, caplog, monkeypatch):
    import logging

    monkeypatch.setenv("QLAB_PROGRESS", "1")
    with caplog.at_level(logging.INFO, logger="qlab"):
        artifacts.measure_models([("float", "float32")], runs=5)
    captured = capsys.readouterr()
    assert captured.out == "" and "measuring" in captured.err
    assert "float/float32: accuracy" in caplog.text
    monkeypatch.setenv("QLAB_PROGRESS", "0")
    artifacts.measure_models([("float", "float32")], runs=5)
    assert capsys.readouterr().err == ""
