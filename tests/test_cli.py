"""The command line: every bad argument is one `error:` line and exit status 2, never a traceback."""

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


BAD = [
    (["reproduce", "--seed", "-1"], "a seed must be from 0 to"),
    (["reproduce", "--seed", "abc"], "a seed must be an integer, got 'abc'"),
    (["reproduce", "--seed", str(2**32)], "a seed must be from 0 to 4294967295"),
    (["reproduce", "--runs", "0"], "--runs must be 1 or more, got 0"),
    (["reproduce", "--epochs", "0"], "--epochs must be 1 or more, got 0"),
    (["reproduce", "--epochs", "-3"], "--epochs must be 1 or more"),
    (["reproduce", "--calibration-size", "0"], "--calibration-size must be 1 or more"),
    (["reproduce", "--calibration-size", "5000"], "--calibration-size must be from 1 to 1347"),
    (["reproduce", "--out", "{file}"], "is a file, not a folder"),
    (["reproduce", "--out", "{file}/sub"], "cannot write there"),
    (["reproduce", "--out", "/proc/qlab-results"], "cannot write there"),
    (["reproduce", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["seeds", "--seeds", "-1", "2"], "a seed must be from 0 to"),
    (["seeds", "--seeds"], "expected at least one argument"),
    (["seeds", "--seeds", "1", "1"], "--seeds: each seed once, got 1 1"),
    (["seeds", "--seeds", "x"], "a seed must be an integer"),
    (["bench", "--kernels", "gpu"], "unknown kernels 'gpu'; valid: xnnpack, builtin, reference"),
    (["bench", "--threads", "0"], "a thread count on this"),
    (["bench", "--threads", "999"], "a thread count on this"),
    (["bench", "--batches", "0"], "a batch size must be 1 or more"),
    (["bench", "--batches", "451"], "--batches: at most 450"),
    (["bench", "--rounds", "0"], "--rounds must be 1 or more"),
    (["bench", "--out", "{file}"], "is a file, not a folder"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) or "nothing" for a, _ in BAD])
def test_bad_arguments_are_one_error_line_and_status_2(argv, message, a_file, capsys):
    argv = [a.replace("{file}", str(a_file)) for a in argv]
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


@pytest.mark.parametrize("argv", [["reproduce", "--seed", "-1"], ["reproduce", "--out", "{file}"],
                                  ["reproduce", "--runs", "0"], ["reproduce", "--epochs", "0"]])
def test_the_four_reported_commands_in_a_real_process(argv, a_file):
    argv = [a.replace("{file}", str(a_file)) for a in argv]
    result = subprocess.run([sys.executable, "-m", "qlab", *argv], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_refused_library_input_is_an_error_line_too(capsys, tmp_path, monkeypatch):
    from qlab.commands import bench

    def refuse(*args, **kwargs):
        raise ValueError("batch 451 is larger than\nthe 450 test images available")

    monkeypatch.setattr(bench, "bench", refuse)
    assert main(["bench", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "error: batch 451 is larger than the 450 test images available\n"


def test_modes_lists_every_mode(capsys):
    from qlab import modes

    assert main(["modes"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == list(modes.MODES)
