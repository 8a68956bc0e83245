"""What notebooks, commands and tests ask for: trained models and converted `.tflite` files for a
(model, data, training, mode), each built once and then served from the cache (`qlab.cache`).

- `trained(config)`: the Keras model a `TrainConfig` describes.
- `quantized(config, mode)`: its `.tflite` in a mode.
- `plan()` and `convert_plan(...)`: every (training, mode) pair of the reproduce table.
- `twin(training)`: the float twin the per-layer views compare a deployed model with.
- `measure_models(...)`: the plan measured on LiteRT, one row per model.

The same configuration gives the same weights and the same `.tflite` bytes whatever the
process built before (`qlab.models.fresh_names`), cache warm or cold.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict

import numpy as np
import pandas as pd

from qlab import cache, data, measure, modes, progress, quantize, tables, train
from qlab.train import TrainConfig
from qlab.vocabulary import TRAININGS

log = logging.getLogger(__name__)


def trained(config: TrainConfig = TrainConfig(), digits: data.Digits | None = None, progress: bool = True):
    """The model `config` describes, trained: from the cache if there, else trained and stored.

    A QAT model that fine-tunes a float one trains (or loads) that float model first.

    Args:
        digits: the data to train on (default: the article's split).
        progress: False hides the training progress bars.

    Returns:
        the trained tf_keras model (QAT: with its fake-quant wrappers).

    Raises:
        ValueError: as `qlab.train.train_float` and `train_qat` (e.g. a quant_delay beyond the steps).
        OSError: the cache folder cannot be written.
    """
    digits = digits or data.load()
    key = {**config.key(), "data": data.fingerprint(digits.x_train, digits.y_train)}

    def build():
        log.info("training %s model %s (seed %d)", config.training, config.model, config.seed)
        if config.training == "float":
            return train.train_float(digits, config, progress)
        if config.quant_delay is None:
            float_model = trained(train.float_config(config), digits, progress)
            return train.train_qat(digits, float_model, config, progress)
        return train.train_qat(digits, None, config, progress)

    def load(payload: bytes):
        model = train.architecture(config)
        load_weights(model, payload)
        return model

    return cache.cached("model", key, build, dump=weights_to_bytes, load=load)


def quantized(config: TrainConfig, mode: str, calibration=None, digits: data.Digits | None = None,
              progress: bool = True) -> bytes:
    """The .tflite of the model `config` describes, in `mode`, cached.

    The model is trained (or loaded) only if its .tflite is not in the cache already.

    Args:
        calibration: representative samples for the modes that need them (default: 100
            training images, `qlab.data.calibration()`); ignored by the others.

    Returns:
        the .tflite bytes.

    Raises:
        ValueError, ConversionError: as `qlab.quantize.quantize`.
    """
    mode = modes.get(mode)
    if mode.needs_calibration and calibration is None:
        calibration = data.calibration()
    calibration = calibration if mode.needs_calibration else None
    key = {
        "model": config.key(),
        "mode": asdict(mode),
        "calibration": None if calibration is None else data.fingerprint(np.asarray(calibration, np.float32)),
    }
    return cache.cached("tflite", key, lambda: quantize.quantize(trained(config, digits, progress), mode,
                                                                 calibration))


def weights_to_bytes(model) -> bytes:
    """The model's weights, serialized.

    Returns:
        the bytes of an .npz holding arr_0, arr_1, ... in `get_weights()` order.
    """
    buffer = io.BytesIO()
    np.savez(buffer, *model.get_weights())
    return buffer.getvalue()


def load_weights(model, payload: bytes) -> None:
    """Set `model`'s weights from `weights_to_bytes` output.

    Raises:
        ValueError, KeyError, OSError: a payload that is not such an .npz or does not fit the model.
    """
    with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
        weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    model.set_weights(weights)


def plan() -> list[tuple[str, modes.Mode]]:
    """Every (training, mode) pair the reproduce table has.

    Returns:
        float in every mode, then QAT in the integer modes, as (training, `Mode`) pairs.
    """
    return [(t, m) for t in TRAININGS for m in modes.for_training(t)]


def convert_plan(pairs=None, seed: int = 0, epochs: int = 10, calibration_size: int = 100,
                 progress: bool = True) -> dict[tuple[str, str], bytes]:
    """The .tflite of each (training, mode) of `pairs` (default: the whole plan), from the cache
    or trained and converted now; calibration is drawn from the training split with `seed`.

    Returns:
        {(training, mode name): .tflite bytes}, in the order of `pairs`.

    Raises:
        ValueError: an unknown mode, or a calibration size outside 1..the training split.
    """
    pairs = plan() if pairs is None else [(t, modes.get(m)) for t, m in pairs]
    digits = data.load()
    calibration = data.calibration(digits.x_train, n=calibration_size, seed=seed)
    bar = _bar(pairs, "converting", progress)
    return {(training, mode.name): quantized(TrainConfig(training=training, seed=seed, epochs=epochs),
                                             mode.name, calibration, digits, progress)
            for training, mode in bar}


def twin(training: str, seed: int = 0, epochs: int = 10, qat_model=None) -> bytes:
    """The float twin for models of `training`: the float32 .tflite of the float model, or of the
    QAT model's float weights with fake-quant taken out (`qlab.train.float_copy`).

    Args:
        qat_model: the trained QAT model, if at hand (else it is loaded).

    Returns:
        the float32 .tflite bytes.

    Raises:
        ValueError: an unknown training.
        ConversionError: the converter refused the model.
    """
    config = TrainConfig(training=training, seed=seed, epochs=epochs)
    if training == "float":
        return quantized(config, "float32", progress=False)
    qat_model = qat_model or trained(config, progress=False)
    return quantize.quantize(train.float_copy(qat_model, config.model), "float32")


def measure_models(pairs=None, seed: int = 0, epochs: int = 10, calibration_size: int = 100,
                   runs: int = 200, progress: bool = True) -> pd.DataFrame:
    """Convert (or load from the cache) and measure each (training, mode) of `pairs` on LiteRT.

    One function serves the reproduce command and the notebooks, so their tables agree.

    Returns:
        `qlab.tables.results` of one row per model: training, mode, seed, epochs, accuracy on
        the test split, latency in µs (median, p10, p90), the article's loop in ms, size in bytes.

    Raises:
        ValueError: as `convert_plan`, or runs below 1.
    """
    tflites = convert_plan(pairs, seed, epochs, calibration_size, progress)
    digits = data.load()
    rows = []
    for (training, mode), tflite in _bar(tflites.items(), "measuring", progress):
        row = {"training": training, "mode": mode, "seed": seed, "epochs": epochs}
        row.update(measure.measure(tflite, digits.x_test, digits.y_test, runs=runs))
        rows.append(row)
        log.info("%s/%s: accuracy %.2f %%, %.1f µs, %s bytes", training, mode, 100 * row["accuracy"],
                 row["latency_us"], f"{row['size_bytes']:,}")
    return tables.results(rows)


def _bar(items, desc: str, show: bool):
    items = list(items)
    return progress.bar(items, desc=desc, total=len(items), show=show, unit="model")
