"""The calibration studies, one seed and small settings each: the grid checked by the sweep engine,
its cells measured in this process (the engine itself, in worker processes, is
tests/test_sweep.py's; here the cells share their model with notebook 12, which runs on this worker
after them). Oracles: the float32 file the cells used gives the min-max ranges of the size study's
files (ten test images against ten training images) and the ranges each range method chose; every
method file holds its chosen range on AEQ's grid (scale and zero point, read from the file); min-max
ranges grow with nested calibration sets. Bad settings are one clear ValueError, and one `error:`
line on the command line."""

import numpy as np
import pandas as pd
import pytest
import tolerance
from matplotlib.figure import Figure
from tolerance import U64, gamma

from qlab import artifacts
from qlab.__main__ import main
from qlab.analysis import calibration
from qlab.plots import calibration as calibration_plots
from qlab.studies import calibration_method as method_study
from qlab.studies import calibration_size as size_study
from qlab.studies import sweep
from qlab.tflite import flatbuffer
from qlab.training import data
from qlab.training.fit import TrainConfig

SIZES = [1, 10, "all", "test_10"]
METHODS = ["minmax", "percentile_99.9", "entropy"]
RELUS = [
    "conv1",
    "conv2",
    "conv3",
    "dense",
]  # ReLU outputs: the converter's range is [0, max] exactly


def cells(study: str, settings) -> pd.DataFrame:
    """The study's grid (checked by the sweep engine), each cell measured here, in grid order."""
    grid = sweep.grid(study, ["digits_cnn"], [0], settings)
    return pd.DataFrame(
        [row for cell in grid.cells for row in grid_module(grid).measure(dict(cell))]
    )


def grid_module(grid):
    return {"calibration-size": size_study, "calibration-method": method_study}[grid.study]


@pytest.fixture(scope="module")
def size_table():
    return cells("calibration-size", SIZES)


@pytest.fixture(scope="module")
def method_table():
    return cells("calibration-method", METHODS)


@pytest.fixture(scope="module")
def float32(size_table, method_table):
    return artifacts.quantized(TrainConfig(model="digits_cnn", seed=0), "float32", progress=False)


@pytest.fixture(scope="module")
def digits():
    return data.load()


def by_layer(table: pd.DataFrame, setting) -> pd.DataFrame:
    return table[table.setting.astype(str) == str(setting)].set_index("layer")


def maxima(float32: bytes, images: np.ndarray, tensors) -> np.ndarray:
    captured = calibration.activations(float32, images)
    return np.array([captured[t].max() for t in tensors])


def range_rtol(float32: bytes, tensors) -> np.ndarray:
    """tolerance.activation_scale_rtol for each tensor (by name): a range the converter's
    calibration interpreter found, read back from a file, against one computed elsewhere in
    float32."""
    model = flatbuffer.read(float32)
    terms = {model.tensors[i].name: n for i, n in tolerance.path_terms(float32).items()}
    return np.array([tolerance.activation_scale_rtol(terms[t]) for t in tensors])


def test_the_size_cells_say_what_they_calibrated_on(size_table, digits):
    assert list(size_table.columns) == list(size_study.COLUMNS)
    cells = size_table.drop_duplicates("setting").set_index("setting")
    assert list(cells.index) == SIZES
    assert (
        cells["size"].tolist() == [1, 10, len(digits.x_train), 10] and len(digits.x_train) == 1347
    )
    assert cells.split.tolist() == ["train", "train", "train", "test"]
    assert (
        size_table.groupby("setting").accuracy.nunique().eq(1).all()
        and (cells.accuracy > 0.9).all()
    )


def test_minmax_ranges_grow_with_the_calibration_set(size_table, float32, digits):
    one, ten = (data.calibration(digits.x_train, n, 0) for n in (1, 10))
    assert any(
        (ten == one[0]).all(axis=(1, 2, 3))
    )  # the draws are nested: 1 image among the 10, among all
    small, middle, full = (by_layer(size_table, s) for s in (1, 10, "all"))
    layers = [
        layer for layer in small.index if layer != "probs/softmax"
    ]  # a fixed grid: 1/256 whatever the data
    # A superset of images reaches at least the same max and min: up to two float32 evaluations of
    # one image (the files are cached, perhaps converted apart) and the scale's arithmetic, the path
    # rule; and where the range holds 0 inside (low < 0), the zero point's rounding moves each end
    # of the grid by up to half a step (ReLU outputs and the input start at 0: their zero point is
    # exact)
    rtol = range_rtol(float32, small.tensor[layers])
    for a, b in ((small, middle), (middle, full)):
        shift = np.where(
            (a.low[layers] < 0) | (b.low[layers] < 0), (a.scale[layers] + b.scale[layers]) / 2, 0.0
        )
        assert (b.high[layers] >= a.high[layers] - rtol * a.high[layers].abs() - shift).all(), (
            a.high,
            b.high,
        )
        assert (b.low[layers] <= a.low[layers] + rtol * a.low[layers].abs() + shift).all(), (
            a.low,
            b.low,
        )
    assert (
        full.high[RELUS] > small.high[RELUS]
    ).sum() >= 3  # and do grow: one image does not reach the range


def test_ten_test_images_are_calibrated_from_the_test_split(size_table, float32, digits):
    test10, train10 = by_layer(size_table, "test_10"), by_layer(size_table, 10)
    test_images, train_images = (
        data.calibration(digits.x_test, 10, 0),
        data.calibration(digits.x_train, 10, 0),
    )
    tensors = test10.tensor[RELUS]
    # the converter's calibration interpreter against LiteRT, each through the roundings on the path
    rtol = range_rtol(float32, tensors)
    for table, images in ((test10, test_images), (train10, train_images)):
        litert = maxima(float32, images, tensors)
        assert np.all(np.abs(table.high[RELUS].to_numpy() - litert) <= rtol * litert), (
            table.high[RELUS],
            litert,
        )
    assert (test10.low[RELUS] == 0).all()
    assert (
        np.abs(test10.high[RELUS] / train10.high[RELUS] - 1).max() > 0.01
    )  # not the training draw


def test_every_method_file_holds_its_chosen_ranges(method_table, float32, digits):
    images = data.calibration(digits.x_train, method_study.CALIBRATION_SIZE, 0)
    captured = calibration.activations(float32, images)
    for setting in METHODS:
        rows = method_table[method_table.setting == setting].set_index("tensor")
        tflite, checked = calibration.method_file(
            float32, images, setting
        )  # the cell's file, made again here
        checked = checked.set_index("tensor").loc[rows.index]
        np.testing.assert_array_equal(
            checked[["low", "high", "scale"]], rows[["low", "high", "scale"]]
        )
        stored = {t.name: t for t in flatbuffer.read(tflite).tensors}
        free = rows[rows.constraint == ""]
        assert len(free) >= 6, setting  # input, conv1-3, dense, probs
        for name, row in free.iterrows():
            tensor = stored[name]
            scale, zero_point = float(tensor.scale[0]), int(tensor.zero_point[0])
            bound_low, bound_high = np.float32(min(row.low, 0)), np.float32(max(row.high, 0))
            # AEQ's rule, in float32 as AEQ computes it, on the float32 range qlab hands it: the
            # same two roundings, stored as float32: equal
            expected = float((bound_high - bound_low) / np.float32(255))
            assert scale == expected and row.scale_rel_error == 0, (setting, row.layer)
            assert zero_point == int(np.rint(-128 - bound_low / np.float32(expected))), (
                setting,
                row.layer,
            )
            assert zero_point == checked.expected_zero_point[name] == checked.zero_point[name]
            # The grid spans the chosen range to within half a step at each end. In steps: the zero
            # point rounds -128 - low/scale, a float32 quotient (u of its at most 255) then a
            # float32 difference (u of its at most 128); 255 scales are the range but for its two
            # float32 roundings (2u of 255); the float64 check itself adds u64 of 255 and 128 steps.
            low_end = 0.5 + gamma(2) * (255 + 128) + gamma(2, U64) * 255
            high_end = low_end + gamma(2) * 255
            assert abs((-128 - zero_point) * scale - bound_low) <= low_end * scale
            assert abs((127 - zero_point) * scale - bound_high) <= high_end * scale
            values = captured[name]
            if setting == "minmax":
                assert (row.low, row.high) == (float(values.min()), float(values.max()))
            else:
                assert row.high <= float(values.max()) and row.low >= float(values.min())
        assert set(rows[rows.constraint != ""].constraint) == {
            "same_as_input_scale",
            "fixed_output_scale",
        }
        names = dict(zip(rows.layer, rows.index))
        flatten, conv3, out = (
            stored[names[layer]] for layer in ("flatten", "conv3", "probs/softmax")
        )
        assert (flatten.scale[0], flatten.zero_point[0]) == (
            conv3.scale[0],
            conv3.zero_point[0],
        )  # a reshape
        assert (float(out.scale[0]), int(out.zero_point[0])) == (
            1 / 256,
            -128,
        )  # softmax's fixed grid
    cut = method_table.pivot(index="layer", columns="setting", values="high").loc[RELUS]
    assert (cut["percentile_99.9"] < cut["minmax"]).all() and (
        cut["entropy"] <= cut["minmax"]
    ).all()


def test_the_summaries_and_headlines_say_what_was_measured(size_table, method_table):
    sizes = size_study.summary(size_table).set_index("setting")
    assert list(sizes.index) == SIZES and (sizes.seeds == 1).all()
    assert sizes.delta_pp["all"] == 0 and sizes.range_ratio["all"] == 1 and sizes.range_ratio[1] < 1
    text = size_study.headline(size_table)
    train = sizes[sizes.split == "train"].sort_values("size")
    ok = (
        train.delta_pp >= -size_study.TOLERANCE_PP
    ).to_numpy()  # full calibration itself always is
    enough = next(int(size) for i, size in enumerate(train["size"]) if ok[i:].all())
    assert text.startswith(
        f"digits_cnn: {enough} image(s) reach full calibration's accuracy within "
        f"{size_study.TOLERANCE_PP} pp"
    )
    t, r = sizes.loc["test_10"], sizes.loc[10]
    assert f"ten test images give {t.accuracy_pct:.2f} %" in text
    assert f"ten training images {r.accuracy_pct:.2f} %" in text
    methods = method_study.summary(method_table).set_index("setting")
    assert list(methods.index) == METHODS and methods.delta_pp["minmax"] == 0
    assert (
        methods.max_scale_rel_error.max() == 0
    )  # every file's scale is AEQ's rule exactly (above)
    text = method_study.headline(method_table)
    assert text.startswith(f"digits_cnn (min-max {methods.accuracy_pct['minmax']:.2f} %): ")
    for setting in METHODS[1:]:
        assert f"{setting} {methods.delta_pp[setting]:+.2f} pp" in text
    assert "every file holds its chosen ranges" in text and "(one seed)" in text


def test_the_figures(size_table, method_table, tmp_path):
    figures = calibration_plots.calibration_size_figures(size_table)
    assert list(figures) == ["calibration_size_accuracy", "calibration_size_ranges"]
    figures |= calibration_plots.calibration_method_figures(method_table)
    assert list(figures)[2:] == ["calibration_method_accuracy", "calibration_method_errors"]
    assert all(isinstance(f, Figure) for f in figures.values())
    for name, table, draw in (
        ("size", size_table, calibration_plots.calibration_size_figures),
        ("method", method_table, calibration_plots.calibration_method_figures),
    ):
        table.to_csv(
            tmp_path / f"{name}.csv", index=False
        )  # as the study command writes it: settings as text
        assert len(draw(pd.read_csv(tmp_path / f"{name}.csv"))) == 2


@pytest.mark.parametrize(
    "study, setting, message",
    [
        (
            size_study,
            5000,
            r"calibration size 5000 is larger than the training split \(1347 images\); give at "
            r"most 1347",
        ),
        (size_study, 0, "a whole number of images from 1, 'all' or 'test_10'; got 0"),
        (size_study, 2.5, "got 2.5"),
        (size_study, "test_20", "got 'test_20'"),
        (
            method_study,
            "percentile_101",
            r"percentile must be in \(50, 100\], e.g. 99.9 or 99.99; got 101.0",
        ),
        (method_study, "percentile_50", r"percentile must be in \(50, 100\].*got 50.0"),
        (method_study, "percentile_x", "'x' is not a number"),
        (
            method_study,
            "kl",
            r"unknown range setting 'kl'; valid ones are 'minmax', 'percentile_99.9', "
            r"'percentile_99.99', 'mse', 'entropy'",
        ),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(study, setting, message):
    with pytest.raises(ValueError, match=message):
        sweep.grid(study.NAME, ["digits_cnn"], [0], [setting])


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["study", "calibration-size", "--settings", "5000"],
            "larger than the training split (1347 images)",
        ),
        (
            ["study", "calibration-method", "--settings", "percentile_101"],
            "percentile must be in (50, 100]",
        ),
        (
            ["study", "calibration-method", "--settings", "percentile_50"],
            "percentile must be in (50, 100]",
        ),
        (
            ["study", "calibration-method", "--settings", "kl"],
            "unknown range setting 'kl'; valid ones are 'minmax'",
        ),
    ],
)
def test_bad_settings_on_the_command_line_are_one_error_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert captured.out == "" and not list(tmp_path.glob("out/*"))  # nothing written


def test_a_method_that_empties_a_range_is_refused_by_name(float32, digits):
    """A percentile just above 50 on a ReLU output (mostly zeros) gives [0, 0]: no grid, so no
    file."""
    images = data.calibration(digits.x_train, 20, 0)
    with pytest.raises(
        ValueError, match=r"percentile_50.0001 gives an empty range \[0, 0\] to \d+ tensor"
    ):
        calibration.method_ranges(float32, images, "percentile_50.0001")
