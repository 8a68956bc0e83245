"""Recurrent models: the fused LSTM's tensors read from a real lstm_rows integer file (checked
against what LiteRT's interpreter reports and against the integer kernel's type rules), its
arithmetic, the error per time step (checked against the accumulated view), the recurrent study's
cells with one seed, its figures, and the clear errors: an LSTM asked for QAT, a file with no
LSTM, a model without a recurrent layer given to the study."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
import tf_keras as keras
from tolerance import numpy_mean

from qlab import artifacts
from qlab.analysis import per_layer, recurrent
from qlab.conversion import to_tflite
from qlab.plots import recurrent as recurrent_plots
from qlab.studies import recurrent as study
from qlab.tflite.runtime import Runtime
from qlab.training import data, fit, models
from qlab.training.fit import TrainConfig

matplotlib.use("Agg")
CONFIG = TrainConfig(model="lstm_rows", seed=0)


@pytest.fixture(scope="module")
def rows():
    return data.load("digits_rows")


@pytest.fixture(scope="module")
def files(rows):
    calibration = data.calibration(
        rows.x_train, seed=0
    )  # as the study and the zoo: the same cached files
    return {
        mode: artifacts.quantized(CONFIG, mode, calibration, rows, progress=False)
        for mode in ("float32", "integer_only")
    }


@pytest.fixture(scope="module")
def keras_model(files):
    return artifacts.convertible(artifacts.trained(CONFIG, progress=False))


def test_the_lstm_tensors_by_role_as_the_integer_kernel_requires(files, keras_model):
    table = recurrent.lstm_tensors(files["integer_only"], keras_model)
    assert set(table.layer) == {"lstm"} and set(table.kernel) == {"integer 8x8_16"}
    assert list(table.role[:24]) == list(recurrent.ROLES) and list(table.role[24:29]) == list(
        recurrent.INTERMEDIATES
    )
    by_role = table.set_index("role")
    assert (
        table[table.kind == "weights"].dtype.eq("int8").all()
        and len(table[table.kind == "weights"]) == 8
    )
    assert (
        by_role.loc[
            ["input_gate_bias", "forget_gate_bias", "cell_gate_bias", "output_gate_bias"], "dtype"
        ]
        .eq("int32")
        .all()
    )
    cell, state, out = by_role.loc["cell_state"], by_role.loc["output_state"], by_role.loc["output"]
    assert cell["dtype"] == "int16" and cell.variable and cell.zero_point == 0
    assert np.log2(cell.scale) == np.round(np.log2(cell.scale)), (
        "the cell state's scale is a power of two"
    )
    assert state["dtype"] == "int8" and state.variable
    assert (state.scale, state.zero_point) == (out.scale, out.zero_point)
    hidden = by_role.loc["effective_hidden_scale_intermediate"]
    assert (hidden["dtype"], hidden.scale, hidden.zero_point) == ("int8", out.scale, out.zero_point)
    # every tensor present and read has the type the integer kernel requires there
    read = table[(table.tensor >= 0) & ~table.note.str.startswith("not read")]
    assert (read.dtype == read.integer_kernel).all(), read[read.dtype != read.integer_kernel]
    # absent slots of a Keras LSTM: peephole, projection, layer normalization
    assert set(table[table.tensor < 0].kind) == {"peephole", "projection", "layer_norm"}
    # each gate bias is on the grid input scale x its input weights' scale (the note gives the
    # ratio)
    for gate in ("input", "forget", "cell", "output"):
        weights, bias = by_role.loc[f"input_to_{gate}_weights"], by_role.loc[f"{gate}_gate_bias"]
        # the product of two float32 scales is exact in float64; the file stores it rounded once to
        # float32
        assert bias.scale == np.float32(by_role.loc["input"].scale * weights.scale)


def test_the_table_agrees_with_what_litert_reports(files):
    table = recurrent.lstm_tensors(files["integer_only"])
    details = {d["index"]: d for d in Runtime(files["integer_only"]).tensors()}
    present = table[(table.tensor >= 0) & (table.kind != "intermediate")]
    for _, row in present.iterrows():
        detail = details[row.tensor]
        assert np.dtype(detail["dtype"]).name == row["dtype"], row.role
        scales = detail["quantization_parameters"]["scales"]
        assert scales[0] == np.float32(row.scale), row.role
        assert detail["quantization_parameters"]["zero_points"][0] == row.zero_point, row.role


def test_the_arithmetic_keeps_8_bits_outside_the_cell_and_16_inside(files):
    stages = recurrent.lstm_arithmetic(files["integer_only"]).set_index("stage")
    assert (
        stages.loc[["input", "previous output", "gate weights", "hidden state", "output"], "bits"]
        .eq(8)
        .all()
    )
    assert (
        stages.loc[
            [
                "gate pre-activations",
                "input, forget, output gates",
                "cell candidate",
                "cell state",
                "tanh of the cell",
            ],
            "bits",
        ]
        .eq(16)
        .all()
    )
    assert stages.loc["matrix products", "bits"] == 32
    assert stages.loc["gate pre-activations", "scale"] == 2.0**-12  # no layer norm: Q3.12
    with pytest.raises(ValueError, match="runs the float kernel"):
        recurrent.lstm_arithmetic(files["float32"])


def test_error_per_time_step_averages_to_the_accumulated_view(files, keras_model, rows):
    x = rows.x_test[:60]
    steps = recurrent.error_over_time(
        files["integer_only"], files["float32"], x, keras_model=keras_model
    )
    assert list(steps.step) == list(range(1, 9)) and set(steps.layer) == {"lstm"}
    whole = (
        per_layer.layer_errors(
            files["integer_only"], files["float32"], x, views="accumulated", keras_model=keras_model
        )
        .set_index("layer")
        .loc["lstm"]
    )
    # each step has the same number of elements, so the mean of the per-step errors is the whole
    # output's. Both run the same files on the same kernels: the same differences, squared alike;
    # only the float64 means differ, each within numpy_mean of its value (non-negative terms): per
    # step over the units and the samples, then over the steps, against over the steps and units at
    # once, then the samples.
    units, samples, time_steps = int(steps.num_elements.iloc[0]), len(x), len(steps)
    rtol = (
        numpy_mean(units)
        + numpy_mean(time_steps)
        + numpy_mean(time_steps * units)
        + 2 * numpy_mean(samples)
    )
    assert steps.mean_squared_error.mean() == pytest.approx(whole.mean_squared_error, rel=rtol)
    assert steps["rmse/scale"].notna().all()


def test_a_file_without_an_lstm_is_refused():
    with models.fresh_names():
        dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(
        ValueError, match=r"no fused LSTM op .*its ops are FULLY_CONNECTED.*fixed batch size"
    ):
        recurrent.lstm_tensors(to_tflite.quantize(dense, "float32"))


def test_an_lstm_qat_request_is_refused_clearly(keras_model):
    with pytest.raises(
        ValueError,
        match=r"tfmot's QAT cannot wrap 'lstm' \(LSTM\) of model 'lstm_rows'.*"
        r"keep the model float and quantize after training",
    ):
        fit.quantize_aware(keras_model)


def test_the_study_refuses_what_it_cannot_take():
    with pytest.raises(ValueError, match=r"'digits_cnn' has none \(models with one: lstm_rows\)"):
        study.check(["digits_cnn"], ["integer_only"])
    with pytest.raises(
        ValueError, match=r"unknown setting 'float16'.*valid: float32, dynamic_range"
    ):
        study.check(["lstm_rows"], ["float16"])
    with pytest.raises(ValueError, match="unknown model"):
        study.check(["gru_rows"], ["integer_only"])


def test_the_study_measures_one_seed(files, rows):
    study.prepare("lstm_rows", 0)
    table = pd.DataFrame(
        [
            row
            for setting in study.SETTINGS
            for row in study.measure({"model": "lstm_rows", "seed": 0, "setting": setting})
        ]
    )
    assert list(table.columns) == list(study.COLUMNS) and list(table.setting) == study.SETTINGS
    by = table.set_index("setting")
    # oracle: accuracies are those of the cached files on LiteRT
    f32 = float(np.mean(Runtime(files["float32"]).predict(rows.x_test).argmax(1) == rows.y_test))
    i8 = float(
        np.mean(Runtime(files["integer_only"]).predict(rows.x_test).argmax(1) == rows.y_test)
    )
    assert (by.loc["float32", "accuracy"], by.loc["integer_only", "accuracy"]) == (f32, i8)
    assert by.loc["integer_only", "delta_pp"] == 100 * (
        i8 - f32
    )  # the same two accuracies, the same arithmetic
    assert by.loc["integer_only", "size_x"] == len(files["integer_only"]) / len(files["float32"])
    assert (
        by.loc["integer_only", "kernel"] == "integer 8x8_16"
        and by.loc["integer_only", "cell_state_type"] == "int16"
    )
    assert by.loc[["full_integer", "integer_only"], list(study.ERRORS)].notna().all().all()
    assert by.loc["dynamic_range", "note"].startswith(
        "measured, but the converter left every tensor"
    )
    for setting, says in (
        ("int16x8", "no int16x8 rule for op UNIDIRECTIONAL_SEQUENCE_LSTM"),
        ("qat", "tfmot's QAT cannot wrap 'lstm' (LSTM)"),
    ):
        assert (
            by.loc[setting, "note"].startswith("not computed, because")
            and says in by.loc[setting, "note"]
        )
        assert np.isnan(by.loc[setting, "accuracy"])
    summary = study.summary(table)
    assert list(summary.setting) == study.SETTINGS and summary.seeds.tolist() == [1, 1, 1, 1, 0, 0]
    headline = study.headline(table)
    assert headline.startswith("lstm_rows: integer_only (integer 8x8_16, int16 cell state)")
    assert "int16x8 is not computed" in headline and "qat is not computed" in headline
    figures = recurrent_plots.recurrent_figures(table)
    assert set(figures) == {"recurrent_accuracy", "recurrent_error_steps"}


def test_the_types_figure(files):
    tensors = recurrent.lstm_tensors(files["integer_only"])
    fig = recurrent_plots.lstm_types(tensors, recurrent.lstm_arithmetic(files["integer_only"]))
    assert len(fig.axes) == 2
    assert len(fig.axes[0].patches) == int((tensors.tensor >= 0).sum())


def test_a_cell_state_under_half_is_flagged_and_breaks_the_hidden_state(rows):
    """An untrained second LSTM's cell stays under 0.5, so the converter gives it the scale 2^-16,
    and LiteRT's integer tanh of the cell (0 to 6 integer bits) is never computed."""
    keras.utils.set_random_seed(0)
    with models.fresh_names():
        inputs = keras.Input((8, 8), batch_size=1)
        x = keras.layers.LSTM(16, return_sequences=True, name="first")(inputs)
        model = keras.Model(inputs, keras.layers.LSTM(8, name="second")(x))
    int8 = to_tflite.quantize(model, "integer_only", rows.x_train[:20])
    float_tflite = to_tflite.quantize(model, "float32")
    cells = recurrent.lstm_tensors(int8, model).query("role == 'cell_state'").set_index("layer")
    broken = cells[np.log2(cells.scale) < -15].index
    assert len(broken) and cells.loc[broken, "note"].str.contains("OUTSIDE 2\\^-15..2\\^-9").all()
    assert not cells.drop(broken).note.str.contains("OUTSIDE").any()
    last = (
        recurrent.error_over_time(int8, float_tflite, rows.x_test[:30], keras_model=model)
        .groupby("layer")["rmse/scale"]
        .last()
    )
    assert last[broken].min() > 10 * last.drop(broken).max(), last


def test_the_study_command_writes_its_table_and_figures_and_resumes(tmp_path, capsys):
    """`python -m qlab study` end to end (through a worker process on a clean checkout, whose cache
    has no cells yet); the rerun comes from the cache."""
    from qlab.__main__ import main

    argv = [
        "-q",
        "study",
        "recurrent",
        "--seeds",
        "0",
        "--settings",
        "float32",
        "int16x8",
        "--jobs",
        "1",
    ]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    first = capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    second = capsys.readouterr()
    assert first.err == second.err == ""
    assert (
        "Study recurrent over seeds [0]" in first.out
        and "int16x8 is not computed, because" in first.out
    )
    written = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert written == [
        "recurrent.csv",
        "recurrent_accuracy.png",
        "recurrent_error_steps.png",
        "recurrent_summary.csv",
    ]
    table = pd.read_csv(tmp_path / "a" / "recurrent.csv")
    assert table[["model", "seed", "setting"]].values.tolist() == [
        ["lstm_rows", 0, "float32"],
        ["lstm_rows", 0, "int16x8"],
    ]
    assert table.accuracy.notna().tolist() == [True, False]
    for name in ("recurrent.csv", "recurrent_summary.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
