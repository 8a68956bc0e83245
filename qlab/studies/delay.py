"""The quant delay curve: int8 accuracy against the number of float training steps before
fake-quant switches on (the TF1 API's `quant_delay`; `qlab.training.fit.train_qat` gives the same
effect by training the float model N steps and wrapping it for the rest of the model's step
budget).

Each cell trains from scratch with `TrainConfig(training="qat", quant_delay=N)` (cached by
`qlab.artifacts`), deploys the result as an integer_only `.tflite` and runs it on LiteRT; the
Keras fake-quant accuracy sits beside it, and so do the float model of the same seed and its
post-training integer_only file, for reference. tfmot starts every activation range at [-6, 6]
and moves it by a moving average (decay 0.999 per step), and sets weight ranges only in training
steps: with few QAT steps the ranges have not left their start (`activation_low`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import fake_quant
from qlab.studies.sweep import spread
from qlab.tflite.measure import accuracy as litert_accuracy
from qlab.training import data, fit, qat
from qlab.training.fit import TrainConfig

NAME = "delay"
MODELS = ("digits_cnn",)
SETTINGS = [0, 200, 400, 420, 428, 430]
"""Float steps before fake-quant (digits_cnn: 430 steps in all, 10 epochs of 43 batches): none and
half the budget, then leaving 30, 10, 2 and no QAT steps, where int8 accuracy moves."""
VERSION = 1


def total_steps(name: str) -> int:
    """Returns the training steps of zoo model `name` (its epochs × batches per epoch): the most
    a quant_delay can be. Raises ValueError for an unknown model."""
    config = TrainConfig(model=name)
    return config.epochs * math.ceil(len(data.load(config.dataset).x_train) / config.batch_size)


def check(names, settings) -> None:
    """Raises ValueError for a setting that is not a whole number from 0 to a model's total steps,
    or a model with recurrent layers (tfmot cannot wrap them for QAT)."""
    for name in names:
        qat.refuse_recurrent(name, "quant delay curve")
        steps = total_steps(name)
        for setting in settings:
            if (
                isinstance(setting, bool)
                or not isinstance(setting, (int, np.integer))
                or not 0 <= setting <= steps
            ):
                default = (
                    f" (the default settings, {SETTINGS}, are digits_cnn's: pass --settings "
                    f"with steps from 0 to {steps} for {name})"
                    if list(settings) == SETTINGS
                    else ""
                )
                raise ValueError(
                    f"a quant_delay setting is a whole number of steps from 0 to {steps} "
                    f"({name}'s training steps), got {setting!r}{default}"
                )


def prepare(model: str, seed: int) -> None:
    """Train (or load) the float model of (model, seed) and its post-training integer_only file."""
    config = TrainConfig(model=model, seed=seed)
    dataset = data.load(config.dataset)
    artifacts.quantized(
        config, "integer_only", data.calibration(dataset.x_train, seed=seed), dataset, False
    )


def measure(cell: dict) -> list[dict]:
    """One (model, seed, quant_delay) cell.

    Returns:
        one row: model, seed, setting, quant_delay, qat_steps and total_steps (steps of fake-quant
        training, and in all), keras_accuracy (the QAT Keras model), int8_accuracy (its
        integer_only .tflite on LiteRT), size_bytes, float_accuracy (the float model of the seed,
        Keras) and ptq_int8_accuracy (its post-training integer_only file, LiteRT), all accuracies
        0..1 on the test split; activation_low (the mean lower end of the activation fake-quant
        ranges, real units: tfmot starts them at -6, ReLU outputs are never negative); note.
    """
    name, seed, delay = cell["model"], int(cell["seed"]), int(cell["setting"])
    config = TrainConfig(training="qat", model=name, seed=seed, quant_delay=delay)
    float_config = fit.float_config(config)
    dataset = data.load(config.dataset)
    calibration = data.calibration(dataset.x_train, seed=seed)
    model = artifacts.trained(config, dataset, progress=False)
    tflite = artifacts.quantized(config, "integer_only", calibration, dataset, False)
    ptq = artifacts.quantized(float_config, "integer_only", calibration, dataset, False)
    steps = total_steps(name)
    lows = [
        float(g.grid.low[0])
        for g in fake_quant.grids(model)
        if g.site.kind == "activation" and g.site.tensor != "input"
    ]
    note = (
        "no QAT step: every range keeps tfmot's start, [-6, 6], the weights' too "
        "(they are set only in training steps)"
        if delay == steps
        else ""
    )
    return [
        {
            "model": name,
            "seed": seed,
            "setting": delay,
            "quant_delay": delay,
            "qat_steps": steps - delay,
            "total_steps": steps,
            "keras_accuracy": fit.keras_accuracy(model, dataset),
            "int8_accuracy": litert_accuracy(tflite, dataset.x_test, dataset.y_test),
            "size_bytes": len(tflite),
            "float_accuracy": fit.keras_accuracy(
                artifacts.trained(float_config, dataset, False), dataset
            ),
            "ptq_int8_accuracy": litert_accuracy(ptq, dataset.x_test, dataset.y_test),
            "activation_low": float(np.mean(lows)) if lows else math.nan,
            "note": note,
        }
    ]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Medians and spreads over seeds.

    Returns:
        one row per (model, quant_delay): qat_steps, seeds, int8_pct, int8_min_pct, int8_max_pct,
        keras_pct, keras_min_pct, keras_max_pct (%, median, min and max over seeds), float_pct and
        ptq_int8_pct (medians, %), activation_low (median, real units), note.
    """
    rows = []
    for (name, delay), part in table.groupby(["model", "quant_delay"], sort=False):
        int8, keras_ = spread(100 * part.int8_accuracy), spread(100 * part.keras_accuracy)
        rows.append(
            {
                "model": name,
                "quant_delay": delay,
                "qat_steps": int(part.qat_steps.iloc[0]),
                "seeds": len(part),
                "int8_pct": int8[0],
                "int8_min_pct": int8[1],
                "int8_max_pct": int8[2],
                "keras_pct": keras_[0],
                "keras_min_pct": keras_[1],
                "keras_max_pct": keras_[2],
                "float_pct": spread(100 * part.float_accuracy)[0],
                "ptq_int8_pct": spread(100 * part.ptq_int8_accuracy)[0],
                "activation_low": spread(part.activation_low)[0],
                "note": part.note.iloc[0],
            }
        )
    return pd.DataFrame(rows)


def headline(table: pd.DataFrame) -> str:
    """How int8 accuracy moves with the quant delay, per model: its median range over the delays
    that leave some QAT steps, and the delays with no QAT step, if measured.

    Returns:
        one sentence per model with the figures (medians over seeds; one delay's value, not a range,
        when one delay left QAT steps).
    """
    frame = summary(table)
    sentences = []
    for name, part in frame.groupby("model", sort=False):
        trained = part[part.qat_steps > 0]
        text = f"{name}: "
        if len(trained):
            best, worst = (
                trained.loc[trained.int8_pct.idxmax()],
                trained.loc[trained.int8_pct.idxmin()],
            )
            seeds = int(part.seeds.max())
            over = "1 seed" if seeds == 1 else f"medians over {seeds} seeds"
            if len(trained) == 1:
                text += (
                    f"int8 accuracy {best.int8_pct:.2f} % ({over}) at quant delay "
                    f"{int(best.quant_delay)} ({int(best.qat_steps)} QAT steps)"
                )
            else:
                text += (
                    f"int8 accuracy {worst.int8_pct:.2f}–{best.int8_pct:.2f} % ({over}) for "
                    f"quant delays {int(trained.quant_delay.min())}–"
                    f"{int(trained.quant_delay.max())} steps, lowest at "
                    f"{int(worst.quant_delay)} ({int(worst.qat_steps)} QAT steps)"
                )
            text += f"; post-training int8 {part.ptq_int8_pct.iloc[0]:.2f} %"
        for _, row in part[part.qat_steps == 0].iterrows():
            text += (
                f"{'; ' if len(trained) else ''}with no QAT step (delay {int(row.quant_delay)}) "
                f"{row.int8_pct:.2f} %, as tfmot's ranges never left [-6, 6]"
            )
        sentences.append(text + ".")
    return " ".join(sentences)
