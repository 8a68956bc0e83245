"""Clustering with quantization: a trained float model's kernels clustered to each cluster count
(`qlab.training.clustering.cluster`), deployed in float32 and int8, then fine-tuned with
cluster-preserving QAT (CQAT) and deployed in int8. What each stage keeps is read from the models
and the files.

A cell is (model, seed, clusters). Its stages: `float` (the trained model), `clustered`
(stripped) and `cqat` (CQAT of the clustered model); plain QAT of the clustered model, the control
notebook 10 runs by hand, is left out of the study to keep five seeds within minutes (`rows` takes
a `qat` stage too). The rows are `qlab.studies.pruning`'s (one per stage, file and layer; file
`keras` is the model's own kernels, before int8 rounding), with one more column, `centroids_per`:
for `cqat` kernels, whether tfmot's CQAT kept one set of centroids per output channel or one per
kernel (`qlab.training.clustering.centroids_per`).

How values are counted (`unique`, `unique_per_channel`): distinct floats in a Keras kernel or a
float32 file; distinct int8 integers in an int8 file. One weight scale per output channel puts one
centroid on a different integer in each channel, so an int8 conv kernel of k clusters holds up to
k distinct integers per channel and more than k in all.

Oracle (`oracle`): CQAT keeps each layer's number of distinct values at most the cluster count,
before int8 rounding (the CQAT model's kernels), counted in the unit tfmot clusters: per output
channel where it keeps centroids per channel, per kernel otherwise."""

from __future__ import annotations

import numbers

import pandas as pd

from qlab.studies import pruning as study
from qlab.studies.pruning import (  # noqa: F401  (the contract's prepare, summary)
    ALL,
    Stage,
    deploy,
    prepare,
    summary,
)
from qlab.training import clustering, models

NAME = "clustering"
MODELS = ("digits_cnn",)
SETTINGS = (8, 16, 32)
"""Cluster counts: centroids per kernel."""
VERSION = 1
COLUMNS = (*study.COLUMNS, "centroids_per")


def check(names, settings) -> None:
    """Refuse cluster counts that are not whole numbers of at least 2 or not fewer than a kernel's
    weights, and models tfmot cannot cluster (an LSTM, by name).

    Raises:
        ValueError: naming the setting or the model and its layers."""
    for setting in settings:
        if isinstance(setting, bool) or not isinstance(setting, numbers.Integral) or setting < 2:
            raise ValueError(
                "clustering settings are cluster counts, whole numbers of 2 or more; "
                f"got {setting!r}"
            )
    for name in names:
        model = models.build(name)
        clustering.check_clusterable(model)
        for setting in settings:
            clustering.check_clusters(model, setting)


def stages(cell: dict) -> dict[str, Stage]:
    """Every model and file of one cell: float, clustered (to the cell's count) and CQAT of the
    clustered model. Seeded: the same cell gives the same bytes.

    Returns {stage: `qlab.studies.pruning.Stage`}, in the order of the table. Raises ValueError for
    a setting or model the study cannot take (see `check`)."""
    _, dataset, calibration = study.inputs(cell["model"], cell["seed"])
    base = prepare(cell["model"], cell["seed"])
    clustered = clustering.cluster(base.model, dataset, cell["setting"], seed=cell["seed"])
    preserving = clustering.cluster_preserving_qat(
        clustered, dataset, cell["setting"], seed=cell["seed"]
    )
    return {
        "float": base,
        "clustered": Stage(clustered, deploy(clustered, calibration)),
        "cqat": Stage(preserving, deploy(preserving, calibration, float32=False)),
    }


def rows(cell: dict, found: dict[str, Stage]) -> list[dict]:
    """Returns `qlab.studies.pruning.rows`, each with `centroids_per` ("channel" or "tensor" for the
    `cqat` stage's `keras` rows, else "")."""
    per = clustering.centroids_per(found["cqat"].model) if "cqat" in found else {}
    return [
        {
            **row,
            "centroids_per": per.get(row["layer"], "")
            if (row["stage"], row["file"]) == ("cqat", "keras")
            else "",
        }
        for row in study.rows(cell, found)
    ]


def measure(cell: dict) -> list[dict]:
    """Cluster, deploy, CQAT, deploy, and read every model and file. Returns the cell's `rows`."""
    return rows(cell, stages(cell))


def per_layer(table: pd.DataFrame, value: str = "unique") -> pd.DataFrame:
    """The before/after table of distinct values (`value`: "unique" or "unique_per_channel").

    Returns a DataFrame indexed by model, clusters, layer, one column per (stage, file), "stage
    file", of medians over seeds."""
    return study.per_layer(
        table,
        value,
        (
            ("float", "keras"),
            ("clustered", "keras"),
            ("clustered", "float32"),
            ("clustered", "int8"),
            ("qat", "int8"),
            ("cqat", "keras"),
            ("cqat", "int8"),
        ),
    )


def oracle(table: pd.DataFrame) -> pd.DataFrame:
    """CQAT's kernels against the cluster count, per layer and seed, and what int8 rounding makes
    of them.

    Returns one row per (model, setting, seed, layer) of the CQAT model's kernels: centroids_per,
    unique and unique_per_channel (distinct floats in the kernel, in all and in the fullest output
    channel), counted (unique_per_channel where centroids are per channel, else unique), holds
    (counted ≤ setting), int8_unique and int8_unique_per_channel (distinct int8 integers of the same
    layer in the CQAT int8 file), int8_scales (1: one scale per tensor)."""
    keras = table[(table.stage == "cqat") & (table.file == "keras")]
    int8 = table[(table.stage == "cqat") & (table.file == "int8") & (table.layer != ALL)]
    keys = ["model", "setting", "seed", "layer"]
    result = keras[keys + ["centroids_per", "unique", "unique_per_channel"]].merge(
        int8[keys + ["unique", "unique_per_channel", "scales"]].rename(
            columns={
                "unique": "int8_unique",
                "unique_per_channel": "int8_unique_per_channel",
                "scales": "int8_scales",
            }
        ),
        on=keys,
        how="left",
    )
    result.insert(
        len(keys) + 3,
        "counted",
        result.unique_per_channel.where(result.centroids_per == "channel", result.unique),
    )
    result.insert(len(keys) + 4, "holds", result.counted <= result.setting)
    return result


def headline(table: pd.DataFrame) -> str:
    """At the fewest clusters, the int8 file's gzip size and accuracy against the unclustered int8
    file's; whether CQAT kept the clusters (the oracle), and how many distinct int8 values its file
    holds.

    Returns one sentence per model (median [min–max] over seeds)."""
    sentences = []
    for name, part in table.groupby("model", sort=False):
        low = part[part.setting == part.setting.min()]
        k = int(low.setting.iloc[0])
        whole = low[(low.layer == ALL) & (low.file == "int8")]

        def get(stage, column, whole=whole):
            return whole[whole.stage == stage].sort_values("seed")[column].to_numpy()

        held = oracle(low)
        ratio = get("clustered", "gzip_bytes") / get("float", "gzip_bytes")
        per_channel = held[held.centroids_per == "channel"]
        channels = (
            f"{len(per_channel)} of them per output channel, "
            f"up to {int(per_channel.unique.max())} values in all"
            if len(per_channel)
            else "every one per kernel"
        )
        sentences.append(
            f"{name} clustered to {k} ({low.seed.nunique()} seeds): its int8 file gzips to "
            f"{study.spread_text(get('clustered', 'gzip_bytes'), 1 / 1024)} KB, "
            f"{study.spread_text(ratio, 1, 2)}× the unclustered int8 file's, at "
            f"{study.spread_text(get('clustered', 'accuracy'), 100)} % LiteRT accuracy "
            f"(unclustered {study.spread_text(get('float', 'accuracy'), 100)} %, after CQAT "
            f"{study.spread_text(get('cqat', 'accuracy'), 100)} %); "
            f"CQAT kept at most {k} values per clustering unit in {int(held.holds.sum())} of "
            f"{len(held)} layer kernels ({channels}), and its int8 file holds "
            f"{int(held.int8_unique.min())}–{int(held.int8_unique.max())} distinct int8 values "
            f"per layer, at most {int(held.int8_unique_per_channel.max())} in any one channel."
        )
    return " ".join(sentences)
