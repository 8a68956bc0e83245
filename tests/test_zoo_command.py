"""`python -m qlab zoo` and the tables under it: the per-seed rows come from LiteRT runs of the
files qlab builds, the summary is their median, min and max, and rows qlab cannot fill say why."""

import numpy as np
import pandas as pd
import pytest
from tolerance import U64, gamma

from qlab import artifacts
from qlab.__main__ import main
from qlab.studies import zoo
from qlab.tflite import measure
from qlab.training import data
from qlab.training.fit import TrainConfig

CSV = 2 * U64
"""A float written to CSV by pandas (its shortest round-trip repr) and read back by pandas' C
parser, whose default converter divides the digits by a power of ten: correctly rounded while the
digits fit in 53 bits, within one ulp (2u relative) beyond."""
PCT = 100 * gamma(6, U64)
"""A percentage from the hand-made accuracies below (decimals in [0, 1]): at most six float64
roundings of numbers no larger than 1 on the way (each literal, drop × seed, two differences, the
product by 100), so within 100·gamma(6) of the decimal arithmetic's value."""


def test_the_command_on_two_models(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(["-q", "zoo", "--out", str(out), "--models", "wine_mlp", "lstm_rows", "--seeds", "0"])
        == 0
    )
    assert capsys.readouterr().err == ""
    summary = pd.read_csv(out / "zoo.csv", keep_default_na=False, na_values=[""])
    per_seed = pd.read_csv(out / "zoo_seeds.csv", keep_default_na=False, na_values=[""])
    assert (out / "zoo.md").read_text().startswith("# qlab zoo")
    assert len(summary) == 2 * len(zoo.ROWS) and len(per_seed) == 2 * len(zoo.ROWS)

    # Oracle: the float32 row is the accuracy of the cached file on LiteRT.
    wine = data.load("wine")
    tflite = artifacts.quantized(
        TrainConfig(model="wine_mlp"), "float32", dataset=wine, progress=False
    )
    row = summary[(summary.model == "wine_mlp") & (summary["mode"] == "float32")].iloc[0]
    # the same count over the same LiteRT run, times 100 (one seed's median is itself), via a CSV
    assert row.accuracy_pct == pytest.approx(
        100 * measure.accuracy(tflite, wine.x_test, wine.y_test), rel=CSV, abs=0
    )
    assert row.size_x == 1 and row.delta_pp == 0

    # The LSTM cannot be trained with QAT by tfmot: an empty row that says why, not a missing one.
    qat = summary[(summary.model == "lstm_rows") & (summary.training == "qat")].iloc[0]
    assert (
        np.isnan(qat.accuracy_pct)
        and qat.note.startswith("not computed, because")
        and "LSTM" in qat.note
    )
    assert qat.seeds == 0
    # Dynamic range quantizes no weight of wine_mlp (all under 1,024 values): measured, and said.
    small = summary[(summary.model == "wine_mlp") & (summary["mode"] == "dynamic_range")].iloc[0]
    assert (
        small.note.startswith("measured, but the converter left every tensor") and small.size_x == 1
    )
    filled = summary[summary.accuracy_pct.notna()]
    assert (
        filled.accuracy_pct.notna().all()
        and (filled.size_x > 0).all()
        and (filled.latency_x > 0).all()
    )
    assert (
        summary[summary["mode"] == "integer_only"]
        .query("training == 'float'")
        .per_tensor_pct.notna()
        .all()
    )


def per_seed_rows(model="m", per_tensor_drop=0.1, levels=100):
    rows = []
    for seed, (f32, i8, size, lat) in enumerate(
        [(0.9, 0.8, 100, 10), (1.0, 0.9, 100, 20), (0.95, 0.95, 200, 10)]
    ):
        rows.append(
            {
                "model": model,
                "training": "float",
                "mode": "float32",
                "seed": seed,
                "accuracy": f32,
                "size_bytes": size,
                "latency_us": lat,
                "per_tensor_accuracy": np.nan,
                "per_tensor_min_levels": np.nan,
                "note": "",
            }
        )
        rows.append(
            {
                "model": model,
                "training": "float",
                "mode": "integer_only",
                "seed": seed,
                "accuracy": i8,
                "size_bytes": size / 4,
                "latency_us": lat / 2,
                "per_tensor_accuracy": i8 - per_tensor_drop * seed,
                "per_tensor_min_levels": levels + seed,
                "note": "",
            }
        )
        rows.append(
            {
                "model": model,
                "training": "qat",
                "mode": "integer_only",
                "seed": seed,
                "accuracy": np.nan,
                "size_bytes": np.nan,
                "latency_us": np.nan,
                "per_tensor_accuracy": np.nan,
                "per_tensor_min_levels": np.nan,
                "note": "not computed, because reasons",
            }
        )
    return pd.DataFrame(rows)


def test_table_is_median_min_max_and_ratios():
    summary = zoo.table(per_seed_rows()).set_index(["training", "mode"])
    i8 = summary.loc[("float", "integer_only")]
    assert (i8.accuracy_pct, i8.accuracy_min_pct, i8.accuracy_max_pct) == pytest.approx(
        (90, 80, 95), rel=0, abs=PCT
    )
    assert (
        i8.delta_pp == pytest.approx(90 - 95, rel=0, abs=PCT)
        and i8.size_x == 0.25
        and i8.latency_x == 0.5
    )
    assert i8.per_tensor_pct == pytest.approx(80, rel=0, abs=PCT) and i8.seeds == 3
    qat = summary.loc[("qat", "integer_only")]
    assert (
        qat.seeds == 0
        and np.isnan(qat.accuracy_pct)
        and qat.note == "not computed, because reasons"
    )


def test_per_tensor_effect_is_paired_by_seed_and_the_finding_follows_the_numbers():
    per_seed = pd.concat(
        [per_seed_rows("mobilenet_mini", 0.01, 80), per_seed_rows("resnet_mini", 0.05, 120)]
    )
    effect = zoo.per_tensor_effect(per_seed).set_index("model")
    # per seed: mobilenet costs 0, 1, 2 pp; resnet 0, 5, 10 pp; medians of the pairs, not accuracies
    costs = effect.loc["mobilenet_mini", ["cost_pp", "cost_min_pp", "cost_max_pp"]].tolist()
    assert costs == pytest.approx([1, 0, 2], rel=0, abs=PCT)
    assert effect.loc["resnet_mini", "cost_pp"] == pytest.approx(5, rel=0, abs=PCT)
    assert effect.loc["resnet_mini", "min_levels"] == 121
    finding = zoo.per_tensor_finding(effect.reset_index())
    assert "does not hurt mobilenet_mini most" in finding and "spans 81 of the 255" in finding
    swapped = pd.concat([per_seed_rows("mobilenet_mini", 0.05), per_seed_rows("resnet_mini", 0.01)])
    assert "hurts mobilenet_mini most" in zoo.per_tensor_finding(zoo.per_tensor_effect(swapped))


def test_beside_published_puts_each_family_beside_its_stand_in():
    summary = pd.DataFrame(
        [
            {"model": m, "training": t, "mode": mode, "accuracy_pct": acc}
            for m, base in (("mobilenet_mini", 97.0), ("resnet_mini", 98.0))
            for t, mode, acc in (
                ("float", "float32", base),
                ("float", "integer_only", base - 1),
                ("qat", "integer_only", base),
            )
        ]
    )
    published = zoo.beside_published(summary).set_index("model")
    assert published.loc["mobilenet_mini", "family"].startswith("MobileNet v1")
    assert (
        published.loc["mobilenet_mini", "ptq_delta_pp"] == -1
    )  # 96.0 - 97.0: whole numbers, exact
    assert published.loc["resnet_mini", "qat_pct_pub"] == pytest.approx(
        76.7, rel=CSV, abs=0
    )  # read from its CSV


def test_unknown_model_and_no_seeds_are_refused():
    with pytest.raises(ValueError, match="alexnet"):
        zoo.sweep(["alexnet"], progress=False)
    with pytest.raises(ValueError, match="no seeds"):
        zoo.sweep(["wine_mlp"], seeds=(), progress=False)


def test_views_benchmark_times_every_mode_or_says_why(tmp_path, capsys):
    assert (
        main(["-q", "views", "--out", str(tmp_path), "--models", "wine_mlp", "--rounds", "2"]) == 0
    )
    assert "Slowest: wine_mlp/" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "views.csv", keep_default_na=False, na_values=[""]).set_index(
        "mode"
    )
    assert list(table.index) == ["full_integer", "int16x8", "dynamic_range"]
    timed = table.loc[["full_integer", "int16x8"]]
    assert (
        (timed.rows > 0).all()
        and (timed.min_s <= timed.median_s).all()
        and (timed.median_s <= timed.max_s).all()
    )
    assert (timed.images == len(data.load("wine").x_test)).all()
    assert (
        np.isnan(table.loc["dynamic_range", "median_s"])
        and "nothing quantized" in table.loc["dynamic_range", "note"]
    )


def test_conversions_benchmark_times_both_routes_on_the_same_files(tmp_path, capsys):
    assert (
        main(["-q", "conversions", "--out", str(tmp_path), "--models", "wine_mlp", "--rounds", "1"])
        == 0
    )
    assert "Same bytes by both routes: every file." in capsys.readouterr().out
    row = pd.read_csv(tmp_path / "conversions.csv", keep_default_na=False, na_values=[""]).iloc[0]
    assert row.model == "wine_mlp" and row.conversions == 6 and row.same_bytes
    assert (
        row.tensorflow_s > 0
        and row.qlab_s > 0
        and row.speedup_min <= row.speedup <= row.speedup_max
    )
