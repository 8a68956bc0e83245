"""Trained models and converted `.tflite` files for a (model, data, training, mode), each built
once and then served from the cache (`qlab.infra.cache`).

`trained`/`quantized` serve zoo models a `TrainConfig` describes; `trained_model`/`quantized_model`
serve your own. The same configuration gives the same weights and `.tflite` bytes, cache warm or
cold, whatever the process built before (`qlab.training.models.fresh_names`).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict

import numpy as np
import pandas as pd

from qlab.conversion import converter, modes, saved_model, to_tflite
from qlab.infra import cache, progress, tables
from qlab.tflite import measure
from qlab.training import data, fit, models
from qlab.training.fit import TrainConfig
from qlab.vocabulary import TRAININGS

log = logging.getLogger(__name__)


def trained(
    config: TrainConfig = TrainConfig(), dataset: data.Dataset | None = None, progress: bool = True
):
    """Returns the trained tf_keras model `config` describes (QAT: with its fake-quant wrappers),
    from the cache or trained and stored; QAT fine-tuning trains (or loads) its float model first.

    Raises ValueError as `qlab.training.fit.train_float`/`train_qat`; OSError if the cache folder
    cannot be written.
    """
    dataset = dataset or data.load(config.dataset)
    key = {
        **config.key(),
        "data": data.fingerprint(dataset.x_train, dataset.y_train),
        **fit.thread_key(),
    }

    def build():
        log.info("training %s model %s (seed %d)", config.training, config.model, config.seed)
        if config.training == "float":
            return fit.train_float(dataset, config, progress)
        if config.quant_delay is None:
            float_model = trained(fit.float_config(config), dataset, progress)
            return fit.train_qat(dataset, float_model, config, progress)
        return fit.train_qat(dataset, None, config, progress)

    def load(payload: bytes):
        model = fit.architecture(config)
        load_weights(model, payload)
        return model

    return cache.cached("model", key, build, dump=weights_to_bytes, load=load)


def convertible(model):
    """Returns a copy with a batch of 1 for a recurrent model with a dynamic batch, else `model`."""
    return (
        models.with_batch_size(model, 1)
        if models.recurrent_layers(model) and model.input_shape[0] is None
        else model
    )


def quantized(
    config: TrainConfig,
    mode: str,
    calibration=None,
    dataset: data.Dataset | None = None,
    progress: bool = True,
    per_channel: bool = True,
) -> bytes:
    """Returns the cached .tflite bytes of the zoo model `config` describes, in `mode`.

    `calibration` defaults to `qlab.training.data.calibration` of the training split (ignored by
    modes without calibration). Raises ValueError, ConversionError as `to_tflite.quantize`.
    """
    mode = modes.get(mode)
    if mode.needs_calibration and calibration is None:
        calibration = data.calibration((dataset or data.load(config.dataset)).x_train)
    calibration = calibration if mode.needs_calibration else None
    key = {
        "model": config.key(),
        "mode": asdict(mode),
        "calibration": None
        if calibration is None
        else data.fingerprint(np.asarray(calibration, np.float32)),
        **fit.thread_key(),  # the model it converts was trained on these threads
    }
    if not per_channel:
        # absent when True: the keys of every per-channel file stay as they were
        key["per_channel"] = False
    return cache.cached(
        "tflite",
        key,
        lambda: to_tflite.quantize(
            convertible(trained(config, dataset, progress)),
            mode,
            calibration,
            per_channel=per_channel,
        ),
    )


def trained_model(
    model,
    dataset: data.Dataset,
    epochs: int = 10,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    use_cache: bool = True,
    progress: bool = True,
):
    """Trains your own tf_keras classifier in place with Adam and the loss you compiled it with,
    else sparse categorical cross-entropy (on logits unless it ends in softmax), and caches the
    weights under a key of its architecture, starting weights, loss, data and settings (a model
    with layers or functions of your own, or a `Lambda`, is trained every time). `seed` fixes the
    batches; the starting weights are the model's own (build it with `qlab.build_model(...,
    seed=)` or after `keras.utils.set_random_seed`, or every process trains anew).

    Returns `model`, trained. Raises TypeError for anything but a tf_keras model and a
    `qlab.dataset`; ValueError for several inputs or outputs, samples that do not fit the input,
    labels the output cannot take, or settings out of range.
    """
    fit.check_keras2(model, "qlab.train")
    if not isinstance(dataset, data.Dataset):
        raise TypeError(
            f"qlab.train takes a data set, got {type(dataset).__name__}: "
            "qlab.load_dataset(name) or qlab.dataset(x_train, y_train, x_test, y_test)"
        )
    key = {
        "architecture": architecture_key(model),
        "initial": weights_key(model),
        "epochs": epochs,
        "data": data.fingerprint(dataset.x_train, dataset.y_train),
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "seed": seed,
        **fit.thread_key(),
    }
    if getattr(model, "loss", None):  # compiled by you: trained with that loss, so keyed by it
        key["loss"] = fit.loss_key(model.loss)

    def build():
        return fit.train_model(model, dataset, epochs, learning_rate, batch_size, seed, progress)

    def load(payload: bytes):
        load_weights(model, payload)
        return model

    if not use_cache or not saved_model.fully_described(model):
        return build()
    return cache.cached("user-model", key, build, dump=weights_to_bytes, load=load)


def quantized_model(
    model, mode: str, calibration=None, per_channel: bool = True, use_cache: bool = True
) -> bytes:
    """Returns the .tflite bytes of your tf_keras model converted in `mode` (a name of
    `qlab.MODES`), cached under a key of its architecture, weights, mode and calibration (a model
    with layers or functions of your own is converted every time).

    `calibration`: representative samples, (n,) + the input's sample shape, for the modes that
    need them (e.g. `qlab.representative_dataset(x_train)`). `per_channel=False`: one weight scale
    per tensor. Raises TypeError for anything but a tf_keras model; ValueError for an unknown
    mode or bad calibration; ConversionError (its message names the op, the layer and the fix)
    when the converter fails or an integer-only file keeps a float op.
    """
    fit.check_keras2(model, "qlab.quantize")
    mode = modes.get(mode)
    calibration = converter.check_calibration(model, calibration, mode)

    def build() -> bytes:
        return to_tflite.quantize(model, mode, calibration, per_channel=per_channel)

    if not use_cache or not saved_model.fully_described(model):
        return build()
    key = {
        "architecture": architecture_key(model),
        "weights": weights_key(model),
        "mode": asdict(mode),
        "per_channel": per_channel,
        "calibration": None if calibration is None else data.fingerprint(calibration),
    }
    return cache.cached("user-tflite", key, build)


def architecture_key(model) -> str:
    """Returns 16 hex digits fingerprinting the model's config, layer names included."""
    text = json.dumps(model.get_config(), sort_keys=True, default=str)
    return data.fingerprint(np.frombuffer(text.encode(), np.uint8))


def weights_key(model) -> str:
    """Returns 16 hex digits fingerprinting every weight array, in order."""
    return data.fingerprint(*model.get_weights()) if model.weights else "no weights"


def weights_to_bytes(model) -> bytes:
    """Returns the bytes of an .npz holding arr_0, arr_1, ... in `get_weights()` order."""
    buffer = io.BytesIO()
    np.savez(buffer, *model.get_weights())
    return buffer.getvalue()


def load_weights(model, payload: bytes) -> None:
    """Sets the weights from `weights_to_bytes` output; raises ValueError, KeyError or OSError for
    a payload that is not such an .npz or does not fit."""
    with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
        weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    model.set_weights(weights)


def conversions() -> list[tuple[str, modes.Mode]]:
    """Returns the reproduce table's (training, `Mode`) pairs: float in every mode, then QAT."""
    return [(t, m) for t in TRAININGS for m in modes.for_training(t)]


def convert_all(
    pairs=None,
    seed: int = 0,
    epochs: int | None = None,
    calibration_size: int = 100,
    progress: bool = True,
    model: str = "digits_cnn",
) -> dict[tuple[str, str], bytes]:
    """Returns {(training, mode name): .tflite bytes} for `pairs` (default: `conversions()`).

    Raises ValueError for an unknown mode or model, or a calibration size outside 1..the split.
    """
    pairs = conversions() if pairs is None else [(t, modes.get(m)) for t, m in pairs]
    configs = {t: TrainConfig(training=t, model=model, seed=seed, epochs=epochs) for t in TRAININGS}
    dataset = data.load(configs["float"].dataset)
    calibration = data.calibration(dataset.x_train, n=calibration_size, seed=seed)
    return {
        (training, mode.name): quantized(
            configs[training], mode.name, calibration, dataset, progress
        )
        for training, mode in _bar(pairs, "converting", progress)
    }


def float_tflite(config: TrainConfig, qat_model=None) -> bytes:
    """Returns the float32 .tflite of the float model, or of a QAT model's float weights without
    fake-quant (`qlab.training.qat.float_copy`). Raises ConversionError if the converter refuses.
    """
    if config.training == "float":
        return quantized(config, "float32", progress=False)
    qat_model = qat_model or trained(config, progress=False)
    template = models.build(config.model, data.load(config.dataset))
    return to_tflite.quantize(convertible(fit.float_copy(qat_model, template)), "float32")


def measure_models(
    pairs=None,
    seed: int = 0,
    epochs: int | None = None,
    calibration_size: int = 100,
    runs: int = 200,
    progress: bool = True,
    model: str = "digits_cnn",
) -> pd.DataFrame:
    """Measures each (training, mode) of `pairs` on LiteRT (shared by command and notebooks).

    Returns `tables.results`, one row per model: training, mode, seed, epochs, test accuracy,
    latency in µs (median, p10, p90), the article's loop in ms, size in bytes.
    Raises ValueError as `convert_all`, or for runs below 1.
    """
    tflites = convert_all(pairs, seed, epochs, calibration_size, progress, model)
    dataset = data.load(TrainConfig(model=model).dataset)
    epochs = TrainConfig(model=model, epochs=epochs).epochs
    rows = []
    for (training, mode), tflite in _bar(tflites.items(), "measuring", progress):
        row = {"training": training, "mode": mode, "seed": seed, "epochs": epochs}
        row.update(measure.measure(tflite, dataset.x_test, dataset.y_test, runs=runs))
        rows.append(row)
        log.info(
            "%s/%s: accuracy %.2f %%, %.1f µs, %s bytes",
            training,
            mode,
            100 * row["accuracy"],
            row["latency_us"],
            f"{row['size_bytes']:,}",
        )
    return tables.results(rows)


def _bar(items, desc: str, show: bool):
    items = list(items)
    return progress.bar(items, desc=desc, total=len(items), show=show, unit="model")
