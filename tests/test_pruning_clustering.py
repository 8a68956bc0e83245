"""Pruning and clustering with quantization (issue 11, parts 4 and 5): every bad input is a clear
error; one cell of each study is measured, and its oracle holds: pruning-preserving QAT keeps each
layer's int8 sparsity within 1 pp of the pruned model's, cluster-preserving QAT keeps at most k
values per clustering unit before int8 rounding; a model still wrapped for pruning or clustering
never reaches the converter."""

import numpy as np
import pandas as pd
import pytest
import tf_keras as keras

from qlab import studies
from qlab.analysis import weights
from qlab.conversion import to_tflite
from qlab.perf import sizes
from qlab.plots import compression
from qlab.studies import clustering as clustering_study
from qlab.studies import pruning as pruning_study
from qlab.training import clustering, data, models, pruning

PRUNING_CELL = {"model": "digits_cnn", "seed": 0, "setting": 0.75}
CLUSTERING_CELL = {"model": "digits_cnn", "seed": 0, "setting": 8}


@pytest.fixture(scope="module")
def pruning_table():
    return pd.DataFrame(pruning_study.measure(dict(PRUNING_CELL)))


@pytest.fixture(scope="module")
def clustering_table():
    return pd.DataFrame(clustering_study.measure(dict(CLUSTERING_CELL)))


def small_model():
    with models.fresh_names():
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Conv2D(2, 2, activation="relu", name="small_conv")(inputs)  # 8 weights
        outputs = keras.layers.Dense(10, activation="softmax", name="head")(
            keras.layers.Flatten()(x)
        )
        return keras.Model(inputs, outputs, name="small")


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", [-0.1, 1, 1.0, 50, True, "0.5", float("nan")])
def test_sparsity_outside_zero_to_one_is_refused(sparsity):
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        pruning.check_sparsity(sparsity)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        pruning_study.check(["digits_cnn"], [sparsity])


def test_a_percentage_is_told_how_to_write_it():
    with pytest.raises(ValueError, match=r"pass 0\.5"):
        pruning.check_sparsity(50)
    with pytest.raises(ValueError, match="1 would remove every weight") as one:
        pruning.check_sparsity(1.0)
    assert "pass" not in str(one.value)
    with pytest.raises(ValueError, match="must be 0 or more") as negative:
        pruning.check_sparsity(-0.1)
    assert "every weight" not in str(negative.value)


@pytest.mark.parametrize("sparsity", [0, 0.0, 0.04])
def test_the_pruning_study_refuses_sparsities_too_low_for_pqat_before_running(sparsity):
    with pytest.raises(ValueError, match=r"lowest sparsity is 0\.05.*pruning-preserving QAT"):
        pruning_study.check(["digits_cnn"], [sparsity])
    pruning_study.check(["digits_cnn"], [0.05, 0.5])


@pytest.mark.parametrize("clusters", [1, 0, -3, 2.5, True, "8"])
def test_fewer_than_two_clusters_are_refused(clusters):
    with pytest.raises(ValueError, match="2 or more"):
        clustering.check_clusters(small_model(), clusters)


def test_more_clusters_than_a_layers_weights_are_refused():
    with pytest.raises(ValueError, match=r"'small_conv' \(8\).*at most 7"):
        clustering.check_clusters(small_model(), 16)
    with pytest.raises(
        ValueError, match=r"'small_conv' \(8\).*more weights than clusters.*at most 7"
    ):
        clustering.check_clusters(small_model(), 8)  # tfmot would skip the layer with a warning
    assert clustering.check_clusters(small_model(), 7) == 7
    with pytest.raises(ValueError, match=r"'conv1' \(576\)"):
        clustering_study.check(["digits_cnn"], [1000])
    with pytest.raises(ValueError, match="2 or more"):
        clustering_study.check(["digits_cnn"], [1])


def test_an_unknown_centroid_initialisation_is_refused(tiny_model, digits):
    with pytest.raises(ValueError, match="KMEANS_PLUS_PLUS"):
        clustering.cluster(tiny_model, digits, 8, init="kmeans")


def test_pruning_preserving_qat_of_a_model_never_pruned_is_refused(tiny_model, digits):
    with pytest.raises(
        ValueError, match=r"none worth the name.*conv1 0\.0 %.*qlab\.training\.pruning\.prune"
    ):
        pruning.quantize_aware(tiny_model, digits, preserve_sparsity=True)
    barely = pruning.copy(tiny_model)
    kernel = barely.get_layer("conv1").kernel
    kernel.assign(
        np.where(
            np.arange(kernel.shape.num_elements()).reshape(kernel.shape) == 0, 0, kernel.numpy()
        )
    )
    with pytest.raises(ValueError, match=r"Prune it further.*0\.05 or more") as tiny:
        pruning.quantize_aware(barely, digits, preserve_sparsity=True)
    assert "Prune it first" not in str(tiny.value)


def test_cluster_preserving_qat_of_a_model_never_clustered_is_refused(tiny_model, digits):
    with pytest.raises(
        ValueError, match=r"never clustered to 8.*qlab\.training\.clustering\.cluster"
    ):
        clustering.cluster_preserving_qat(tiny_model, digits, 8)


def test_recurrent_layers_are_refused_by_name():
    rows = data.load("digits_rows")
    lstm = models.build("lstm_rows")
    with pytest.raises(ValueError, match="recurrent layer 'lstm'"):
        pruning.prune(lstm, rows, 0.5)
    with pytest.raises(ValueError, match="recurrent layer 'lstm'"):
        clustering.cluster(lstm, rows, 8)
    with pytest.raises(ValueError, match="'lstm'"):
        pruning.quantize_aware(lstm, rows)
    for study, setting in ((pruning_study, 0.5), (clustering_study, 8)):
        with pytest.raises(ValueError, match="recurrent layer 'lstm'"):
            study.check(["lstm_rows"], [setting])


class Scale(keras.layers.Layer):
    """A layer of the user's own with a weight: in neither of tfmot's registries."""

    def build(self, input_shape):
        self.gain = self.add_weight(name="gain", shape=(), initializer="ones")

    def call(self, inputs):
        return self.gain * inputs


def test_unsupported_layers_are_refused_by_name(digits):
    with models.fresh_names():
        inputs = keras.Input((8, 8, 1))
        x = Scale(name="gain")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(10, name="head")(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match=r"pruning does not support layer 'gain' \(Scale\)"):
        pruning.prune(model, digits, 0.5)
    with pytest.raises(ValueError, match=r"clustering does not support layer 'gain' \(Scale\)"):
        clustering.cluster(model, digits, 8)


@pytest.mark.parametrize("technique", ["pruning", "clustering"])
def test_the_converter_refuses_a_model_still_wrapped(tiny_model, technique):
    import tensorflow_model_optimization as tfmot

    plain = pruning.copy(tiny_model)
    if technique == "pruning":
        wrapped, strip = tfmot.sparsity.keras.prune_low_magnitude(plain), "strip_pruning"
    else:
        wrapped, strip = (
            tfmot.clustering.keras.cluster_weights(plain, number_of_clusters=8),
            "strip_clustering",
        )
    for mode in ("float32", "integer_only"):
        with pytest.raises(ValueError, match=f"training wrappers; call tfmot's {strip}"):
            to_tflite.quantize(wrapped, mode, data.calibration(data.load().x_train))


# -- the pipeline --------------------------------------------------------------------------------
def test_prune_is_seeded_and_leaves_its_input_alone(tiny_model, digits):
    before = [w.copy() for w in tiny_model.get_weights()]
    first = pruning.prune(tiny_model, digits, 0.5, epochs=1, ramp_epochs=1, seed=3)
    second = pruning.prune(tiny_model, digits, 0.5, epochs=1, ramp_epochs=1, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(before, tiny_model.get_weights()))
    assert [layer.name for layer in first.layers] == [layer.name for layer in tiny_model.layers]
    assert all(abs(s - 0.5) < 0.01 for s in pruning.kernel_sparsity(first).values())


def test_cluster_leaves_at_most_k_values_and_its_input_alone(tiny_model, digits):
    before = [w.copy() for w in tiny_model.get_weights()]
    clustered = clustering.cluster(tiny_model, digits, 4, epochs=1)
    assert all(n <= 4 for n, _ in clustering.unique_values(clustered).values())
    assert all(np.array_equal(a, b) for a, b in zip(before, tiny_model.get_weights()))


def test_gzip_size_is_deterministic_and_rewards_zeros():
    noise = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    sparse = np.where(np.abs(noise) < 1, 0, noise).astype(np.float32)
    assert sizes.gzip_bytes(noise.tobytes()) == sizes.gzip_bytes(noise.tobytes())
    assert sizes.gzip_bytes(sparse.tobytes()) < 0.6 * sizes.gzip_bytes(noise.tobytes())


# -- the studies, one cell each ------------------------------------------------------------------
def test_the_studies_keep_the_contract():
    for name, module in (("pruning", pruning_study), ("clustering", clustering_study)):
        assert studies.get(name) is module and module.NAME == name
        assert module.MODELS == ("digits_cnn",) and isinstance(module.VERSION, int)
        module.check(list(module.MODELS), list(module.SETTINGS))


def test_pruning_rows_are_tidy(pruning_table):
    table = pruning_table
    assert list(table.columns) == list(pruning_study.COLUMNS)
    assert not table.duplicated(["model", "seed", "setting", "stage", "file", "layer"]).any()
    files = set(zip(table.stage, table.file))
    assert files == {(s, f) for s in ("float", "pruned") for f in ("keras", "float32", "int8")} | {
        ("qat", "keras"),
        ("qat", "int8"),
        ("pqat", "keras"),
        ("pqat", "int8"),
    }
    layers = ["conv1", "conv2", "conv3", "dense", "probs"]
    for (_stage, kind), part in table.groupby(["stage", "file"]):
        assert list(part.layer) == layers + ([] if kind == "keras" else [pruning_study.ALL])
    whole = table[table.layer == pruning_study.ALL]
    assert whole.accuracy.between(0.5, 1).all() and (whole.gzip_bytes < whole.size_bytes).all()


def test_the_pruned_file_holds_the_models_zeros_and_gzips_smaller(pruning_table):
    pruned = pruning_table[pruning_table.stage == "pruned"].pivot(
        index="layer", columns="file", values="sparsity"
    )
    # tfmot keeps round(0.25·n) of a kernel's n weights (the ramp ends on a mask update): 0.75 to
    # within half a weight, 0.5 / n
    keras = pruning_table[
        (pruning_table.stage == "pruned") & (pruning_table.file == "keras")
    ].set_index("layer")
    assert (np.abs(keras.sparsity - 0.75) <= 0.5 / keras.weights).all(), keras[
        ["sparsity", "weights"]
    ]
    assert (pruned.keras.dropna() == pruned.float32.reindex(pruned.keras.dropna().index)).all()
    whole = (
        pruning_table[(pruning_table.layer == pruning_study.ALL)]
        .set_index(["stage", "file"])
        .gzip_bytes
    )
    assert whole["pruned", "int8"] < 0.6 * whole["float", "int8"]
    assert whole["pruned", "float32"] < 0.5 * whole["float", "float32"]


def test_oracle_pruning_preserving_qat_keeps_each_layers_sparsity(pruning_table):
    oracle = pruning_study.oracle(pruning_table)
    assert len(oracle) == 5 and oracle.holds.all(), oracle
    assert (oracle.qat_pct < oracle.pruned_pct - 20).all(), oracle  # plain QAT lets the zeros go


def test_oracle_cluster_preserving_qat_keeps_at_most_k_values(clustering_table):
    oracle = clustering_study.oracle(clustering_table)
    assert len(oracle) == 5 and oracle.holds.all(), oracle
    assert (oracle.int8_unique_per_channel <= 8).all()  # rounding never splits a channel's centroid
    per_tensor = oracle[oracle.int8_scales == 1]
    assert (per_tensor.int8_unique <= 8).all()
    clustered = clustering_table[
        (clustering_table.stage == "clustered") & (clustering_table.layer != "(all)")
    ]
    counts = clustered.pivot(index="layer", columns="file", values="unique")
    assert (counts.keras <= 8).all() and (counts.keras == counts.float32).all()


def test_clustering_rows_say_how_cqat_held_its_centroids(clustering_table):
    table = clustering_table
    assert list(table.columns) == list(clustering_study.COLUMNS)
    cqat = table[(table.stage == "cqat") & (table.file == "keras")]
    assert set(cqat.centroids_per) <= {"channel", "tensor"} and len(cqat) == 5
    assert (table[(table.stage != "cqat") | (table.file != "keras")].centroids_per == "").all()


def test_summary_headline_and_figures_come_from_the_rows(pruning_table, clustering_table):
    for module, table, stems in (
        (pruning_study, pruning_table, ("pruning_layers", "pruning_size")),
        (clustering_study, clustering_table, ("clustering_layers", "clustering_size")),
    ):
        summary = module.summary(table)
        assert len(summary) == len(table) and (summary.seeds == 1).all()
        assert summary.gzip_bytes.dtype == "Int64" and summary.size_bytes_max.dtype == "Int64"
        assert module.headline(table).startswith("digits_cnn ")
        figures = (
            compression.pruning_figures
            if module is pruning_study
            else compression.clustering_figures
        )(table)
        assert sorted(figures) == sorted(f"{stem}_digits_cnn" for stem in stems)
    assert "pruned to 75 %" in pruning_study.headline(pruning_table)
    assert "clustered to 8 " in clustering_study.headline(clustering_table)


def test_weight_table_counts_int8_integers(clustering_table, digits):
    table = clustering_table[
        (clustering_table.stage == "clustered") & (clustering_table.file == "int8")
    ]
    assert (table.type == "INT8").all()
    model = models.build("digits_cnn")
    tflite = to_tflite.quantize(model, "float32")
    read = weights.weight_table(tflite, model)
    assert (
        list(read.layer) == ["conv1", "conv2", "conv3", "dense", "probs"]
        and (read.scales == 0).all()
    )
    assert (read.unique == read.unique_real).all() and weights.total_sparsity(read) == 0


def test_layers_feeding_a_concatenate_keep_their_zeros_through_pqat(digits, calibration):
    # tfmot's ConcatTransform gives these layers the default config;
    # qlab.training.pruning.ConcatInputsKept mends it
    pruned = pruning.prune(models.build("inception_mini"), digits, 0.5, epochs=1, ramp_epochs=1)
    pqat = pruning.quantize_aware(pruned, digits, preserve_sparsity=True, epochs=1)
    table = weights.weight_table(to_tflite.quantize(pqat, "integer_only", calibration), pruned)
    feeding = table[table.layer.isin(["branch1x1", "branch3x3", "branch_pool_proj"])]
    # pruned to round(0.5·n) zeros (half a weight: 0.5 / n), which PQAT keeps and int8 rounding can
    # only add to
    assert len(feeding) == 3 and (feeding.sparsity >= 0.5 - 0.5 / feeding.weights).all(), table
