"""The bits and quant delay studies, one seed and a small setting each: the 8-bit point deployed on
LiteRT agrees with the Keras QAT model (within 0.5 pp), and so does the 4-bit-weight point, whose
file holds INT4 weights; rows say what each file kept, or why there is none; both studies refuse
settings they cannot take."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from tolerance import gamma

from qlab import artifacts
from qlab.analysis import fake_quant
from qlab.plots.schemes import bits_figures, delay_figures
from qlab.studies import bits, delay
from qlab.training.fit import TrainConfig


@pytest.fixture(scope="module")
def bits_rows():
    cells = [
        ("digits_cnn", [8, 8]),
        ("digits_cnn", [4, 8]),
        ("digits_cnn", [8, 4]),
        ("mobilenet_mini", [8, 8]),
    ]
    return pd.DataFrame(
        [
            row
            for name, setting in cells
            for row in bits.measure({"model": name, "seed": 0, "setting": setting})
        ]
    )


@pytest.fixture(scope="module")
def delay_rows():
    return pd.DataFrame(
        [
            row
            for setting in (420, 430)
            for row in delay.measure({"model": "digits_cnn", "seed": 0, "setting": setting})
        ]
    )


def test_the_8_bit_point_deployed_matches_keras_qat(bits_rows):
    full = bits_rows[(bits_rows.weight_bits == 8) & (bits_rows.activation_bits == 8)]
    assert set(full.method) == {"qat", "post_training"} and len(full) == 4
    for _, row in full.iterrows():
        assert abs(row.deployed_accuracy - row.keras_accuracy) <= 0.005, (row.model, row.method)
        assert row.size_bytes < row.float32_bytes and row.file_weights == "INT8"
        # the file's input scale comes from the fake-quant op's own range, so
        # (high − low) / scale + 1 is 255 s / s' + 1 with s' within a few float32 roundings of s
        # (1e-7 relative): 256.0 once rounded to the column's one decimal, which would need 2e-4 to
        # move
        assert row.file_activation_levels == 256 and 200 < row.file_weight_values <= 255
    assert (full.keras_accuracy > 0.9).all()


def test_the_4_bit_point_deploys_int4_weights(bits_rows):
    four = bits_rows[bits_rows.weight_bits == 4].set_index("method")
    assert list(four.index) == ["post_training", "qat", "aeq_wi4_afp32"]
    assert (
        math.isnan(four.deployed_accuracy["post_training"])
        and "Keras fake-quant only" in four.note["post_training"]
    )
    # the converter writes tfmot's 4-bit weight grid as INT4 tensors: the same grid, the same model
    qat = four.loc["qat"]
    assert qat.file_weights == "INT4" and abs(qat.deployed_accuracy - qat.keras_accuracy) <= 0.005
    digits8 = bits_rows[
        (bits_rows.model == "digits_cnn") & (bits_rows.weight_bits == 8)
    ].size_bytes.min()
    assert qat.size_bytes < 0.7 * digits8
    aeq = four.loc["aeq_wi4_afp32"]  # ai-edge-quantizer runs here: a measured file
    assert aeq.deployed_accuracy > 0.9 and aeq.file_weights == "INT4", aeq.note
    assert aeq.size_bytes < 0.25 * aeq.float32_bytes and "weight_only_wi4_afp32" in aeq.note


def test_4_bit_activations_do_not_convert_and_say_why(bits_rows):
    qat = bits_rows[(bits_rows.activation_bits == 4) & (bits_rows.method == "qat")].iloc[0]
    assert math.isnan(qat.deployed_accuracy) and qat.note.startswith("not deployed, because")
    assert "integer_only" in qat.note and 0.5 < qat.keras_accuracy <= 1
    assert (
        "4-bit activations" in qat.note
        and "softmax's input and output grids differ in type" in qat.note
    )
    assert "same element type" in qat.note and "Use mode" not in qat.note


def test_bits_summary_headline_and_figure(bits_rows):
    summary = bits.summary(bits_rows)
    assert len(summary) == len(bits_rows) and (summary.seeds == 1).all()
    text = bits.headline(bits_rows)
    assert "At 4-bit weights" in text and "(INT4 weights)" in text and "pp of Keras" in text
    assert "(1 seed)" in text and "–" not in text  # one seed: single values, no degenerate ranges
    only4 = bits.headline(bits_rows[bits_rows.activation_bits == 4])
    assert "8/4" in only4 and "0 of 1 QAT models deployed" in only4
    figures = bits_figures(bits_rows)
    assert list(figures) == ["bits_curve"] and isinstance(figures["bits_curve"], Figure)
    assert "only partly keeps" in figures["bits_curve"]._suptitle.get_text()


@pytest.mark.parametrize("setting", [[1, 8], [8, 9], [4.0, 8], [8], "8/8", [8, 8, 8]])
def test_bits_refuses_bad_settings(setting):
    with pytest.raises(ValueError):
        bits.check(["digits_cnn"], [setting])


def test_delay_default_settings_say_they_are_digits_cnns():
    with pytest.raises(
        ValueError, match="default settings.*digits_cnn's: pass --settings with steps from 0 to"
    ):
        delay.check(["wine_mlp"], delay.SETTINGS)


def test_bits_and_delay_refuse_recurrent_models():
    for study, setting in ((bits, [8, 8]), (delay, 0)):
        with pytest.raises(ValueError, match="recurrent"):
            study.check(["lstm_rows"], [setting])


def test_delay_rows(delay_rows):
    rows = delay_rows.set_index("quant_delay")
    assert list(rows.qat_steps) == [10, 0] and (rows.total_steps == 430).all()
    assert (
        rows.int8_accuracy[420] > 0.9
        and abs(rows.int8_accuracy[420] - rows.keras_accuracy[420]) <= 0.005
    )
    assert (
        rows.int8_accuracy[430] < 0.5 and "no QAT step" in rows.note[430]
    )  # ranges never left [-6, 6]
    # tfmot starts every range at [-6, 6]: with no QAT step the grid low is that range's, nudged
    start = float(fake_quant.nudge(-6.0, 6.0, 8).low[0])
    assert rows.activation_low[430] == start
    # After k QAT steps, min <- min - (min - batch_min)·(1 - 0.999) (tfmot's MovingAverageQuantizer,
    # TensorFlow's assign_moving_average), with batch_min <= 0 (tfmot puts 0 in every range): a
    # ReLU output's batch minimum is 0, so its min is -6·0.999^k, up to three float32 roundings a
    # step (the product, the difference, and 0.999 itself stored in float32); the logits' can only
    # be lower. The study's column is the mean of the nudged grids' lows.
    k = int(rows.qat_steps[420])
    model = artifacts.trained(
        TrainConfig(training="qat", model="digits_cnn", seed=0, quant_delay=420), progress=False
    )
    sites = [
        g
        for g in fake_quant.grids(model)
        if g.site.kind == "activation" and g.site.tensor != "input"
    ]
    relus = [g for g in sites if g.site.tensor == "post_activation"]
    assert len(relus) == 4 and len(sites) == 5  # conv1-3 and dense after their ReLU; the logits
    after = -6 * 0.999**k
    for g in relus:
        assert float(g.site.variables["min_var"].numpy()) == pytest.approx(
            after, rel=gamma(3 * k), abs=0
        )
    assert all(
        float(g.site.variables["min_var"].numpy()) <= after * (1 - gamma(3 * k)) for g in sites
    )
    assert rows.activation_low[420] == np.mean([float(g.grid.low[0]) for g in sites])
    assert rows.float_accuracy.nunique() == 1 and rows.ptq_int8_accuracy.iloc[0] > 0.9
    summary = delay.summary(delay_rows)
    assert list(summary.quant_delay) == [420, 430]
    text = delay.headline(delay_rows)
    assert (
        "with no QAT step (delay 430)" in text
        and "(1 seed) at quant delay 420 (10 QAT steps)" in text
    )
    assert list(delay_figures(delay_rows)) == ["delay_curve"]


@pytest.mark.parametrize("setting", [-1, 431, 1.5, True, "100"])
def test_delay_refuses_bad_settings(setting):
    with pytest.raises(ValueError, match="quant_delay setting"):
        delay.check(["digits_cnn"], [setting])
