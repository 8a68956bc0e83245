"""The command line: every bad argument is one `error:` line and exit status 2, never a
traceback."""

import os
import subprocess
import sys

import pytest

from qlab.__main__ import main


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("not a folder")
    return path


@pytest.fixture
def a_dir(tmp_path):
    """An --out folder whose output names are taken by the wrong kind of entry."""
    out = tmp_path / "taken"
    (out / "bench.csv").mkdir(parents=True)
    (out / "models").write_text("a file where reproduce writes a folder")
    return out


BAD = [
    (["reproduce", "--seed", "-1"], "argument --seed: must be from 0 to 4,294,967,295, got -1"),
    (["reproduce", "--seed", "abc"], "argument --seed: must be a whole number, got 'abc'"),
    (["reproduce", "--seed", "1e3"], "must be a whole number, got '1e3'"),
    (["reproduce", "--seed", "٣"], "must be a whole number"),
    (["reproduce", "--seed", ""], "must be a whole number, got ''"),
    (["reproduce", "--seed", str(2**32)], "must be from 0 to 4,294,967,295"),
    (["reproduce", "--runs", "0"], "argument --runs: must be from 1 to 1,000,000, got 0"),
    (["reproduce", "--runs", "10000000000000"], "argument --runs: must be from 1 to 1,000,000"),
    (["reproduce", "--epochs", "0"], "argument --epochs: must be from 1 to 1,000, got 0"),
    (["reproduce", "--epochs", "-3"], "argument --epochs: must be from 1 to 1,000"),
    (["reproduce", "--epochs", "10" * 20], "argument --epochs: must be from 1 to 1,000"),
    (["reproduce", "--calibration-size", "0"], "argument --calibration-size: must be 1 or more"),
    (["reproduce", "--calibration-size", "5000"], "--calibration-size must be from 1 to 1347"),
    (["reproduce", "--out", "{file}"], "is a file, not a folder"),
    (["reproduce", "--out", "{file}/sub"], "cannot write to"),
    (["reproduce", "--out", "/proc/qlab-results"], "cannot write to"),
    (["reproduce", "--out", "x" * 300], "cannot write to"),
    (["reproduce", "--out", ""], "--out is empty"),
    (["reproduce", "--out", "{dir}"], "is a file, but reproduce writes a folder there"),
    (["reproduce", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["seeds", "--seeds", "-1", "2"], "argument --seeds: must be from 0 to"),
    (["seeds", "--seeds"], "expected at least one argument"),
    (["seeds", "--seeds", "1", "1"], "--seeds: each value once, got 1 1"),
    (["seeds", "--seeds", "x"], "must be a whole number"),
    (["bench", "--kernels", "gpu"], "unknown kernels 'gpu'; valid: xnnpack, builtin, reference"),
    (["bench", "--kernels", "xnnpack", "xnnpack"], "--kernels: each value once"),
    (["bench", "--threads", "0"], "argument --threads: must be from 1 to"),
    (["bench", "--threads", "999"], "argument --threads: must be from 1 to"),
    (["bench", "--threads", "1", "1"], "--threads: each value once, got 1 1"),
    (["bench", "--batches", "0"], "argument --batches: must be 1 or more"),
    (["bench", "--batches", "451"], "--batches: at most 450"),
    (["bench", "--batches", "1", "1"], "--batches: each value once"),
    (["bench", "--rounds", "0"], "argument --rounds: must be from 1 to 1,000"),
    (["bench", "--out", "{file}"], "is a file, not a folder"),
    (["bench", "--out", "{dir}"], "is a folder, but bench writes a file there"),
    (
        ["zoo", "--models", "alexnet"],
        "unknown model 'alexnet'; the zoo: digits_cnn, mobilenet_mini",
    ),
    (
        ["zoo", "--models", "wine_mlp", "wine_mlp"],
        "--models: each value once, got wine_mlp wine_mlp",
    ),
    (["zoo", "--models"], "expected at least one argument"),
    (["zoo", "--seeds", "1", "1"], "--seeds: each value once"),
    (["zoo", "--out", "{file}"], "is a file, not a folder"),
    (["views", "--rounds", "0"], "argument --rounds: must be from 1 to 1,000"),
    (["views", "--models", "vgg"], "unknown model 'vgg'"),
    (["views", "--out", "{file}"], "is a file, not a folder"),
    (["conversions", "--rounds", "0"], "argument --rounds: must be from 1 to 1,000"),
    (["zoo", "--models", "wine_mlp", "--models", "lstm_rows"], "--models given twice"),
    (["reproduce", "--seed", "1", "--seed=2"], "--seed given twice"),
    (["conversions", "--models", "vgg"], "unknown model 'vgg'"),
    (["conversions", "--out", "{file}"], "is a file, not a folder"),
    (
        ["study", "nope"],
        "unknown study 'nope'; the studies are: bits, delay, pruning, clustering, recurrent",
    ),
    (["study"], "the following arguments are required: NAME"),
    (["study", "pruning", "--settings", "0.5", "0.5"], "--settings: each value once, got 0.5 0.5"),
    (["study", "bits", "--jobs", "0"], "argument --jobs: must be from 1 to 256, got 0"),
    (["study", "pruning", "--models", "vgg"], "unknown model 'vgg'"),
    (["study", "pruning", "--seeds", "1", "1"], "--seeds: each value once"),
    (["study", "pruning", "--out", "{file}"], "is a file, not a folder"),
    (["study", "bits", "--settings", "[1,8]"], "weight_bits must be a whole number from 2 to 8"),
    (
        ["study", "bits", "--settings", "[8,9]"],
        "activation_bits must be a whole number from 2 to 8",
    ),
    (
        ["study", "bits", "--settings", "4"],
        "a bits setting is a pair [weight_bits, activation_bits], got 4",
    ),
    (["study", "bits", "--models", "lstm_rows"], "tfmot cannot wrap them for QAT"),
    (
        ["study", "pruning", "--settings", "1.0"],
        "sparsity is the fraction of weights set to zero, in [0, 1)",
    ),
    (["study", "pruning", "--settings", "-0.1"], "in [0, 1): got -0.1"),
    (["study", "clustering", "--settings", "1"], "whole numbers of 2 or more; got 1"),
    (
        ["study", "clustering", "--settings", "100000"],
        "100000 clusters are not fewer than the weights of layer",
    ),
    (["study", "clustering", "--models", "lstm_rows"], "refuses the recurrent layer 'lstm'"),
    (["study", "recurrent", "--models", "digits_cnn"], "'digits_cnn' has none"),
    (
        ["study", "recurrent", "--settings", "int4"],
        "unknown setting 'int4' for the recurrent study",
    ),
    (["study", "delay", "--settings", "-1"], "a quant_delay setting is a whole number of steps"),
    (
        ["study", "bits", "--backend", "dask"],
        "backend dask needs a dask scheduler's address (--scheduler ADDRESS",
    ),
    (
        ["study", "bits", "--scheduler", "tcp://127.0.0.1:8786"],
        "is for backend dask; loky runs its workers on this",
    ),
    (["study", "bits", "--backend", "threads"], "unknown backend 'threads'; valid: loky, dask"),
    (
        ["study", "bits", "--backend", "dask", "--scheduler", "not an address"],
        "'not an address' is not a dask scheduler address: give tcp://HOST:PORT",
    ),
    (
        [
            "study",
            "bits",
            "--backend",
            "dask",
            "--scheduler",
            "tcp://127.0.0.1:8786",
            "--jobs",
            "2",
        ],
        "n_jobs (--jobs) is loky's worker count, got 2; on dask the cluster's workers run the "
        "cells",
    ),
    (["sweep-bench", "nope"], "unknown study 'nope'; the studies are: bits"),
    (["sweep-bench", "bits", "--rounds", "0"], "argument --rounds: must be from 1 to 1,000, got 0"),
    (["sweep-bench", "bits", "--seeds", "1", "1"], "--seeds: each value once"),
    (
        ["sweep-bench", "bits", "--settings", "4"],
        "a bits setting is a pair [weight_bits, activation_bits], got 4",
    ),
    (["sweep-bench", "bits", "--out", "{file}"], "is a file, not a folder"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) or "nothing" for a, _ in BAD])
def test_bad_arguments_are_one_error_line_and_status_2(argv, message, a_file, a_dir, capsys):
    argv = [a.replace("{file}", str(a_file)).replace("{dir}", str(a_dir)) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        status = main(argv)
        raise SystemExit(status)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert message in lines[0]
    assert captured.out == ""
    assert a_file.read_text() == "not a folder"  # loses nothing
    assert (a_dir / "models").read_text().startswith("a file")


@pytest.mark.parametrize(
    "argv",
    [
        ["reproduce", "--seed", "-1"],
        ["reproduce", "--out", "{file}"],
        ["reproduce", "--runs", "0"],
        ["reproduce", "--epochs", "0"],
    ],
)
def test_the_four_reported_commands_in_a_real_process(argv, a_file):
    argv = [a.replace("{file}", str(a_file)) for a in argv]
    result = subprocess.run(
        [sys.executable, "-m", "qlab", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, (
        result.stderr
    )
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_refused_library_input_is_an_error_line_too(capsys, tmp_path, monkeypatch):
    from qlab.commands import bench

    def refuse(*args, **kwargs):
        raise ValueError("batch 451 is larger than\nthe 450 test images available")

    monkeypatch.setattr(bench, "bench", refuse)
    assert main(["bench", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "error: batch 451 is larger than the 450 test images available\n"


def test_an_unwritable_cache_is_named(monkeypatch, tmp_path, capsys, a_file):
    monkeypatch.setenv("QLAB_CACHE", str(a_file))
    assert main(["bench", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the cache folder (set QLAB_CACHE") and len(err.splitlines()) == 1


def test_quiet_before_or_after_the_command(capsys):
    from qlab.__main__ import parser

    assert parser().parse_args(["-q", "modes"]).quiet and parser().parse_args(["modes", "-q"]).quiet
    assert not parser().parse_args(["modes"]).quiet


def test_modes_lists_every_mode(capsys):
    from qlab.conversion import modes

    assert main(["modes"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == list(modes.MODES)


def test_the_zoo_names_the_command_line_knows_are_the_zoo():
    from qlab.commands import arguments
    from qlab.training import models

    assert arguments.ZOO_NAMES == tuple(models.ZOO)
