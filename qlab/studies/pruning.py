"""Pruning with quantization: a trained float model pruned by magnitude to each target sparsity
(`qlab.training.pruning.prune`), deployed in float32 and int8, then fine-tuned with QAT two ways,
plain and pruning-preserving (PQAT), and deployed in int8. What each stage keeps is read from the
files.

A cell is (model, seed, target sparsity). Its stages: `float` (the trained model, unpruned),
`pruned` (stripped), `qat` and `pqat` (QAT of the pruned model). Every stage has one row per
(file, layer): file `keras` (the model's own kernels, before any rounding), `float32` or `int8`
(the `.tflite`, `integer_only`), layer a Keras layer with weights or "(all)" for the whole file.
So a per-layer before/after table is a pivot of `stage` and `file`, and a figure reads the rows.

Oracle (`oracle`): PQAT keeps each layer's sparsity in the int8 file within 1 percentage point of
the pruned model's int8 file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import weights
from qlab.conversion import to_tflite
from qlab.perf import sizes
from qlab.tflite.measure import accuracy
from qlab.training import data, models, pruning
from qlab.training.fit import TrainConfig

NAME = "pruning"
MODELS = ("digits_cnn",)
SETTINGS = (0.5, 0.75, 0.9)
"""Target sparsities: the fraction of each Conv and Dense kernel set to zero."""
VERSION = 1
INT8 = "integer_only"
"""The converter mode of every int8 file (int8 weights, activations and I/O)."""
ALL = "(all)"
"""The `layer` of a file's whole-model row (sparsity over all its weights, accuracy, sizes)."""
COLUMNS = (
    "model",
    "seed",
    "setting",
    "stage",
    "file",
    "layer",
    "op",
    "type",
    "weights",
    "sparsity",
    "unique",
    "unique_per_channel",
    "channels",
    "scales",
    "accuracy",
    "size_bytes",
    "gzip_bytes",
)
ORACLE_PP = 1.0
"""PQAT keeps each layer's int8 sparsity within this many percentage points of the pruned
model's."""


@dataclass
class Stage:
    """One model of a cell (tf_keras; QAT stages with fake-quant wrappers) and its deployed files,
    {"float32" or "int8": .tflite bytes}."""

    model: object
    files: dict


def check(names, settings) -> None:
    """Refuse sparsities outside [0, 1), sparsities below `qlab.training.pruning.MIN_SPARSITY` (too
    few zeros for the PQAT stage, which needs a pruned model), and models tfmot cannot prune (an
    LSTM, by name).

    Raises:
        ValueError: naming the setting or the model and its layers."""
    for setting in settings:
        if pruning.check_sparsity(setting) < pruning.MIN_SPARSITY:
            raise ValueError(
                f"the pruning study's lowest sparsity is {pruning.MIN_SPARSITY:g}: got "
                f"{setting!r}, which leaves too few zeros for its pruning-preserving QAT stage "
                "(PQAT keeps the zeros of a model pruned to at least "
                f"{100 * pruning.MIN_SPARSITY:g} % in some kernel); pass settings of "
                f"{pruning.MIN_SPARSITY:g} or more"
            )
    for name in names:
        pruning.check_prunable(models.build(name))


def inputs(name: str, seed: int):
    """Returns (the `TrainConfig`, the data set, 100 calibration samples of the training split
    drawn with `seed`) of a (model, seed)."""
    config = TrainConfig(model=name, seed=seed)
    dataset = data.load(config.dataset)
    return config, dataset, data.calibration(dataset.x_train, seed=seed)


def prepare(name: str, seed: int) -> Stage:
    """Returns the `float` stage: the trained float model of (model, seed) and its float32 and int8
    files, through `qlab.artifacts`' cache: what every cell of the pair starts from."""
    config, dataset, calibration = inputs(name, seed)
    model = artifacts.trained(config, dataset, progress=False)
    return Stage(
        model,
        {
            "float32": artifacts.quantized(config, "float32", calibration, dataset, progress=False),
            "int8": artifacts.quantized(config, INT8, calibration, dataset, progress=False),
        },
    )


def deploy(model, calibration, float32: bool = True) -> dict:
    """Returns {"float32": bytes, "int8": bytes} of `model` (only "int8" if `float32` is False).

    Raises:
        ValueError, ConversionError: as `qlab.conversion.to_tflite.quantize` (e.g. a model still
            wrapped for pruning or clustering)."""
    files = {"float32": to_tflite.quantize(model, "float32")} if float32 else {}
    files["int8"] = to_tflite.quantize(model, INT8, calibration)
    return files


def stages(cell: dict) -> dict[str, Stage]:
    """Every model and file of one cell: float, pruned (to the cell's setting), plain QAT and PQAT
    of the pruned model. Seeded: the same cell gives the same bytes.

    Returns {stage: `Stage`}, in the order of the table. Raises ValueError for a setting or model
    the study cannot take (see `check`)."""
    _, dataset, calibration = inputs(cell["model"], cell["seed"])
    base = prepare(cell["model"], cell["seed"])
    pruned = pruning.prune(base.model, dataset, cell["setting"], seed=cell["seed"])
    found = {"float": base, "pruned": Stage(pruned, deploy(pruned, calibration))}
    for stage, preserve in (("qat", False), ("pqat", True)):
        trained = pruning.quantize_aware(
            pruned, dataset, preserve_sparsity=preserve, seed=cell["seed"]
        )
        found[stage] = Stage(trained, deploy(trained, calibration, float32=False))
    return found


def keras_rows(model) -> list[dict]:
    """Returns one dict per kernel of a Keras model, its values before any rounding: layer,
    weights, sparsity, unique, unique_per_channel, channels (the last axis)."""
    return [
        {
            "layer": name,
            "weights": int(k.size),
            "sparsity": float(np.mean(k == 0)),
            "unique": int(len(np.unique(k))),
            "channels": int(k.shape[-1]),
            "unique_per_channel": int(max(len(np.unique(k[..., c])) for c in range(k.shape[-1]))),
        }
        for name, k in pruning.kernels(model).items()
    ]


def file_rows(tflite: bytes, model, dataset) -> list[dict]:
    """Returns one row per weight tensor of a file (`qlab.analysis.weights.weight_table`) and one
    "(all)" row, each with the file's LiteRT test accuracy, its size and gzip size (the columns of
    `COLUMNS` after `file`)."""
    table = weights.weight_table(tflite, model)
    whole = {
        "accuracy": accuracy(tflite, dataset.x_test, dataset.y_test),
        "size_bytes": len(tflite),
        "gzip_bytes": sizes.gzip_bytes(tflite),
    }
    rows = [{**row, **whole} for row in table.to_dict("records")]
    rows.append(
        {
            "layer": ALL,
            "op": "",
            "type": table.type.iloc[0] if len(table) else "",
            "weights": int(table.weights.sum()),
            "sparsity": weights.total_sparsity(table),
            **whole,
        }
    )
    return rows


def rows(cell: dict, found: dict[str, Stage]) -> list[dict]:
    """The tidy rows of one cell from its stages (`stages`).

    Returns one dict per (stage, file, layer) with every column of `COLUMNS` (NaN where a column
    does not apply: no accuracy for `keras` rows, no unique count for "(all)")."""
    dataset = data.load(TrainConfig(model=cell["model"]).dataset)
    found_rows = []
    for stage, part in found.items():
        per_file = [("keras", row) for row in keras_rows(part.model)]
        per_file += [
            (kind, row)
            for kind, tflite in part.files.items()
            for row in file_rows(tflite, part.model, dataset)
        ]
        for kind, row in per_file:
            found_rows.append(
                {column: row.get(column, np.nan) for column in COLUMNS}
                | {
                    "model": cell["model"],
                    "seed": cell["seed"],
                    "setting": cell["setting"],
                    "stage": stage,
                    "file": kind,
                }
            )
    return found_rows


def measure(cell: dict) -> list[dict]:
    """Prune, deploy, QAT two ways, deploy, and read every file. Returns the cell's `rows`."""
    return rows(cell, stages(cell))


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Medians and spreads over seeds.

    Returns one row per (model, setting, stage, file, layer): seeds, and for sparsity, unique,
    unique_per_channel, accuracy, size_bytes and gzip_bytes the median and `_min`, `_max` (byte
    counts as nullable Int64 where whole)."""
    keys = ["model", "setting", "stage", "file", "layer"]
    values = [
        c
        for c in (
            "sparsity",
            "unique",
            "unique_per_channel",
            "accuracy",
            "size_bytes",
            "gzip_bytes",
        )
        if c in table
    ]
    grouped = table.groupby(keys, sort=False)[values]
    result = grouped.median()
    for suffix, how in (("_min", grouped.min()), ("_max", grouped.max())):
        result = result.join(how.add_suffix(suffix))
    for column in [c for c in result if c.startswith(("size_bytes", "gzip_bytes"))]:
        # byte counts as integers (a median of two may be x.5)
        if (result[column].dropna() % 1 == 0).all():
            result[column] = result[column].astype("Int64")
    result.insert(0, "seeds", table.groupby(keys, sort=False).seed.nunique())
    return result.reset_index()


def per_layer(
    table: pd.DataFrame,
    value: str = "sparsity",
    columns=(
        ("pruned", "keras"),
        ("pruned", "float32"),
        ("pruned", "int8"),
        ("qat", "keras"),
        ("qat", "int8"),
        ("pqat", "keras"),
        ("pqat", "int8"),
    ),
) -> pd.DataFrame:
    """The before/after table: the median over seeds of `value` per (model, setting, layer).

    Returns a DataFrame indexed by model, setting, layer, one column per (stage, file) of
    `columns`, named "stage file"."""
    rows_ = table[table.layer != ALL]
    pivot = rows_.pivot_table(
        index=["model", "setting", "layer"],
        columns=["stage", "file"],
        values=value,
        aggfunc="median",
        sort=False,
    )
    wanted = [c for c in columns if c in pivot.columns]
    result = pivot[wanted]
    result.columns = [f"{stage} {kind}" for stage, kind in wanted]
    return result


def oracle(table: pd.DataFrame) -> pd.DataFrame:
    """PQAT against the pruned model, per layer and seed, in the int8 files.

    Returns one row per (model, setting, seed, layer): pruned_pct and pqat_pct (sparsity of the
    int8 file, %), qat_pct (plain QAT's), pqat_change_pp (pqat − pruned, pp), holds
    (|pqat_change_pp| ≤ `ORACLE_PP`)."""
    rows_ = table[(table.file == "int8") & (table.layer != ALL)]
    pivot = rows_.pivot_table(
        index=["model", "setting", "seed", "layer"], columns="stage", values="sparsity", sort=False
    )
    result = pd.DataFrame(
        {
            "pruned_pct": 100 * pivot["pruned"],
            "qat_pct": 100 * pivot["qat"],
            "pqat_pct": 100 * pivot["pqat"],
        }
    )
    result["pqat_change_pp"] = result.pqat_pct - result.pruned_pct
    result["holds"] = result.pqat_change_pp.abs() <= ORACLE_PP
    return result.reset_index()


def spread_text(values, scale: float = 1.0, digits: int = 1) -> str:
    """Returns values over seeds (times `scale`) as text: the median, then [min–max] if they
    differ, e.g. "96.9 [96.2–97.8]"."""
    values = pd.Series(values, dtype=float) * scale
    median, low, high = (f"{v:.{digits}f}" for v in (values.median(), values.min(), values.max()))
    return median + ("" if low == high else f" [{low}–{high}]")


def headline(table: pd.DataFrame) -> str:
    """At the highest target sparsity, the int8 file's gzip size and accuracy against the unpruned
    int8 file's, and the share of zeros after plain QAT and PQAT against the pruned file's; whether
    the oracle held.

    Returns one sentence per model (median [min–max] over seeds)."""
    sentences = []
    for name, part in table.groupby("model", sort=False):
        top = part[part.setting == part.setting.max()]
        whole = top[(top.layer == ALL) & (top.file == "int8")]

        def get(stage, column, whole=whole):
            return whole[whole.stage == stage].sort_values("seed")[column].to_numpy()

        ratio = get("pruned", "gzip_bytes") / get("float", "gzip_bytes")
        held = oracle(part)
        sentences.append(
            f"{name} pruned to {100 * top.setting.iloc[0]:.0f} % ({top.seed.nunique()} seeds): "
            f"its int8 file gzips to {spread_text(get('pruned', 'gzip_bytes'), 1 / 1024)} KB, "
            f"{spread_text(ratio, 1, 2)}× the unpruned int8 file's, "
            f"at {spread_text(get('pruned', 'accuracy'), 100)} % LiteRT accuracy (unpruned "
            f"{spread_text(get('float', 'accuracy'), 100)} %); zeros in the int8 file: pruned "
            f"{spread_text(get('pruned', 'sparsity'), 100)} %, after plain QAT "
            f"{spread_text(get('qat', 'sparsity'), 100)} %, "
            f"after PQAT {spread_text(get('pqat', 'sparsity'), 100)} %; over every target and "
            f"seed, PQAT kept {int(held.holds.sum())} of {len(held)} layer sparsities within "
            f"{ORACLE_PP:g} pp of the pruned model's."
        )
    return " ".join(sentences)
