"""The command line's argument types and checks; each message says what is valid. `UsageError` is
for checks that need more than one argument, the data or the file system. Loads no TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

from qlab import studies, vocabulary
from qlab.infra import cache

SEED_LIMIT = 2**32  # Keras' set_random_seed and NumPy's generators take seeds below this
# beyond these a run would not finish today
LIMITS = {"epochs": 1000, "runs": 1_000_000, "rounds": 1000, "jobs": 256}
ZOO_NAMES = (
    "digits_cnn",
    "mobilenet_mini",
    "resnet_mini",
    "inception_mini",
    "lstm_rows",
    "wine_mlp",
)
"""The zoo's names, as `qlab.training.models.ZOO` has them (a test checks they agree): kept here
so that argument mistakes are answered without loading TensorFlow."""
OUTPUTS = {  # what each command writes under --out: (folders, files)
    "reproduce": (("models", "figures"), ("results.csv", "results.md", "comparison.csv")),
    "bench": ((), ("bench.csv", "peaks.csv", "sizes.csv", "work.csv", "bench.png", "sizes.png")),
    "seeds": ((), ("seeds.csv",)),
    "zoo": ((), ("zoo.csv", "zoo_seeds.csv", "zoo.md")),
    "views": ((), ("views.csv",)),
    "conversions": ((), ("conversions.csv",)),
    **{f"study {name}": ((), (f"{name}.csv", f"{name}_summary.csv")) for name in studies.STUDIES},
    **{f"sweep-bench {name}": ((), (f"sweep_bench_{name}.csv",)) for name in studies.STUDIES},
}


class UsageError(Exception):
    """An argument that parses but cannot be used (e.g. an --out that is a file)."""


def integer(text: str, low: int, high: int | None) -> int:
    """Returns the whole number `text` (ASCII digits), low <= value <= high (None: no limit).

    Raises argparse.ArgumentTypeError for anything else.
    """
    text = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
    value = int(text)
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high:,}" if high is not None else f"{low} or more"
        raise argparse.ArgumentTypeError(f"must be {bound}, got {value:,}")
    return value


def seed(text: str) -> int:
    """Returns a seed, 0 <= seed < 2**32; raises argparse.ArgumentTypeError for anything else."""
    return integer(text, 0, SEED_LIMIT - 1)


def positive(limit: int | None = None):
    """Returns an argparse type for a whole number from 1 to `limit` (None: no limit)."""
    return lambda text: integer(text, 1, limit)


def threads(text: str) -> int:
    """Returns a thread count from 1 to the core count; raises argparse.ArgumentTypeError else."""
    return integer(text, 1, os.cpu_count() or 1)


def kernels(text: str) -> str:
    """Returns a name of `qlab.vocabulary.KERNELS`; raises as `member`."""
    return member(text, vocabulary.KERNELS, "kernels", "valid")


def zoo_model(text: str) -> str:
    """Returns a zoo model's name; raises as `member`."""
    return member(text, ZOO_NAMES, "model", "the zoo")


def study_name(text: str) -> str:
    """Returns a name of `qlab.studies.STUDIES`; raises as `member`."""
    return member(text, tuple(studies.STUDIES), "study", "the studies are")


def setting(text: str):
    """Returns one study setting parsed as JSON (e.g. 8 or [4,8]), else the text (a mode)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def member(text: str, valid, what: str, listing: str) -> str:
    """Returns `text` if it is one of `valid`, else raises argparse.ArgumentTypeError
    "unknown {what} {text!r}; {listing}: {valid, ...}"."""
    if text not in valid:
        raise argparse.ArgumentTypeError(f"unknown {what} {text!r}; {listing}: {', '.join(valid)}")
    return text


def writable(path: Path, what: str) -> None:
    """Creates the folder `path` if needed; raises UsageError (naming `what`) if it is a file or
    cannot be created or written."""
    try:
        if path.exists() and not path.is_dir():
            raise UsageError(
                f"{what}: {path} is a file, not a folder; pass a folder (it is created if missing)"
            )
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(
            f"{what}: cannot write to {path} ({exc.strerror or exc}); pass a writable folder"
        ) from None


def check_out(out: str, command: str) -> Path:
    """Returns the --out folder's path, created if needed.

    Raises UsageError if it is empty, a file or not writable, or if a name the command writes is
    taken by the wrong kind of entry (a folder where it writes a file, or the reverse).
    """
    if not out.strip():
        raise UsageError("--out is empty; pass a folder, e.g. --out results")
    path = Path(out)
    writable(path, "--out")
    folders, files = OUTPUTS.get(command, ((), ()))
    for name in folders:
        if (path / name).exists() and not (path / name).is_dir():
            raise UsageError(
                f"--out {out}: {path / name} is a file, but {command} writes a folder there; "
                "move it or pick another --out"
            )
    for name in files:
        if (path / name).is_dir():
            raise UsageError(
                f"--out {out}: {path / name} is a folder, but {command} writes a file there; "
                "move it or pick another --out"
            )
    return path


def check(args, test_images: int, training_images: int) -> None:
    """The checks that need more than one argument, the data or the file system.

    Raises UsageError naming the argument and what is valid.
    """
    for name in ("seeds", "kernels", "threads", "batches", "models"):
        values = getattr(args, name, None)
        if values and len(set(values)) != len(values):
            raise UsageError(f"--{name}: each value once, got {' '.join(map(str, values))}")
    if getattr(args, "batches", None) and max(args.batches) > test_images:
        raise UsageError(
            f"--batches: at most {test_images}, the test images there are; got {max(args.batches)}"
        )
    if getattr(args, "calibration_size", None) and args.calibration_size > training_images:
        raise UsageError(
            f"--calibration-size must be from 1 to {training_images}, the training images there "
            f"are; got {args.calibration_size}"
        )
    if getattr(args, "settings", None) and len({json.dumps(s) for s in args.settings}) != len(
        args.settings
    ):
        raise UsageError(
            f"--settings: each value once, got {' '.join(map(json.dumps, args.settings))}"
        )
    if getattr(args, "out", None) is not None:
        check_out(
            args.out, f"{args.command} {args.name}" if hasattr(args, "name") else args.command
        )
    if args.command != "modes" and not getattr(args, "no_cache", False):
        writable(
            cache.cache_dir(), "the cache folder (set QLAB_CACHE to a writable folder, or unset it)"
        )
