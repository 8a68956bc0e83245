"""Command line: `python -m qlab reproduce` and friends.

This module only parses and checks arguments, calls a command (`qlab.commands`), and prints.
A bad argument prints one `error:` line and exits with status 2; so does bad input the library
refuses. Progress bars and logs go to stderr (`--quiet` switches both off), results to stdout.
The command modules load TensorFlow, so `run` imports them only once a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path

from qlab import data, modes, progress, vocabulary
from qlab.perf.bench import QUICK, BenchConfig

SEED_LIMIT = 2**32  # Keras' set_random_seed and NumPy's generators take seeds below this


class UsageError(Exception):
    """An argument that parses but cannot be used (e.g. an --out that is a file)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one `error:` line and exit status 2, no usage dump."""

    def error(self, message: str):
        """Print `error: message` and a pointer to --help on stderr, exit with status 2."""
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _integer(text: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise argparse.ArgumentTypeError(f"{what} must be {bound}, got {value}")
    return value


def seed(text: str) -> int:
    """argparse type: a seed, 0 <= seed < 2**32.

    Returns:
        the seed.

    Raises:
        argparse.ArgumentTypeError: not an integer, or out of range.
    """
    return _integer(text, 0, SEED_LIMIT - 1, "a seed")


def positive(what: str):
    """argparse type: an integer of 1 or more, named `what` in the error.

    Returns:
        a function of the argument's text that returns the integer (or raises
        argparse.ArgumentTypeError).
    """
    return lambda text: _integer(text, 1, None, what)


def threads(text: str) -> int:
    """argparse type: a thread count this machine has, 1..cores.

    Returns:
        the count.

    Raises:
        argparse.ArgumentTypeError: not an integer, or not between 1 and the core count.
    """
    return _integer(text, 1, os.cpu_count() or 1, f"a thread count on this {os.cpu_count()}-core machine")


def kernels(text: str) -> str:
    """argparse type: a kernel choice of `qlab.vocabulary.KERNELS`.

    Returns:
        the name.

    Raises:
        argparse.ArgumentTypeError: an unknown name (the message lists the valid ones).
    """
    if text not in vocabulary.KERNELS:
        raise argparse.ArgumentTypeError(f"unknown kernels {text!r}; valid: {', '.join(vocabulary.KERNELS)}")
    return text


def parser() -> Parser:
    """The whole command line.

    Returns:
        the `Parser`, with subcommands reproduce, seeds, bench and modes.
    """
    main = Parser(prog="python -m qlab", description="qlab: see quantization happen on a model you can "
                  "train in seconds. Each command writes its files under --out and prints a summary.")
    quiet = Parser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="no progress bars or logs on stderr")
    sub = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rep = sub.add_parser("reproduce", parents=[quiet], help="train, convert every mode, measure, write the tables")
    rep.add_argument("--out", default="results", help="output folder (default: results/)")
    rep.add_argument("--seed", type=seed, default=0, help="seed of training and calibration (default 0)")
    rep.add_argument("--epochs", type=positive("--epochs"), default=10, help="float training epochs (article: 10)")
    rep.add_argument("--calibration-size", type=positive("--calibration-size"), default=100,
                     help="calibration images drawn from the training split (default 100)")
    rep.add_argument("--runs", type=positive("--runs"), default=200, help="timed invokes per latency figure")
    rep.add_argument("--no-cache", action="store_true",
                     help="retrain and reconvert everything in a scratch cache (the shared one is untouched)")

    sds = sub.add_parser("seeds", parents=[quiet], help="accuracy of every model over several seeds, with medians")
    sds.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2, 3, 4], help="default: 0 1 2 3 4")
    sds.add_argument("--out", default="results", help="writes OUT/seeds.csv")

    ben = sub.add_parser("bench", parents=[quiet],
                         help="latency under every kernel choice, threads and batch; size; work")
    ben.add_argument("--out", default="results", help="writes OUT/bench.csv, sizes.csv, work.csv, *.png")
    ben.add_argument("--kernels", type=kernels, nargs="+", default=None,
                     help=f"{' '.join(vocabulary.KERNELS)} (default: all)")
    ben.add_argument("--threads", type=threads, nargs="+", default=None, help="default: 1 2")
    ben.add_argument("--batches", type=positive("a batch size"), nargs="+", default=None, help="default: 1 32")
    ben.add_argument("--rounds", type=positive("--rounds"), default=None,
                     help="interleaved rounds per setting (default 15)")
    ben.add_argument("--quick", action="store_true", help="a few iterations only (a smoke test)")

    sub.add_parser("modes", help="list the post-training modes")
    return main


def check_out(out: str) -> Path:
    """The --out folder, created if needed, after checking that files can be written in it.

    Returns:
        its path.

    Raises:
        UsageError: it is a file, or cannot be created or written.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder; pass a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc}); pass a writable folder") from None
    return path


def check(args) -> None:
    """Checks that need more than one argument, or the data: duplicate seeds, calibration size.

    Raises:
        UsageError: naming the argument and what is valid.
    """
    if args.command == "seeds" and len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds: each seed once, got {' '.join(map(str, args.seeds))}")
    if args.command == "bench" and args.batches:
        pool = len(data.load().x_test)
        if max(args.batches) > pool:
            raise UsageError(f"--batches: at most {pool}, the test images there are; got {max(args.batches)}")
    if args.command == "reproduce":
        pool = len(data.load().x_train)
        if args.calibration_size > pool:
            raise UsageError(f"--calibration-size must be from 1 to {pool}, the training images there are; "
                             f"got {args.calibration_size}")
    if getattr(args, "out", None) is not None:
        check_out(args.out)


def run(args) -> int:
    """Call the command `args` names and print its summary.

    The command modules are imported here, not at the top: they load TensorFlow (seconds), which
    `modes`, `--help` and argument errors do not need.

    Returns:
        the exit status: 0, or 1 for `seeds` when a band check fails.
    """
    if args.command == "modes":
        for m in modes.MODES.values():
            print(f"{m.name:20s} {m.summary}")
        return 0
    if args.command == "reproduce":
        from qlab.commands import reproduce

        print(reproduce.summary(reproduce.reproduce(
            args.out, seed=args.seed, epochs=args.epochs, calibration_size=args.calibration_size,
            runs=args.runs, use_cache=not args.no_cache, progress=not args.quiet)))
        return 0
    if args.command == "bench":
        from qlab.commands import bench

        config = QUICK if args.quick else BenchConfig()
        chosen = {"kernels": args.kernels, "threads": args.threads, "batches": args.batches, "rounds": args.rounds}
        config = dataclasses.replace(config, **{k: tuple(v) if isinstance(v, list) else v
                                                for k, v in chosen.items() if v is not None})
        print(bench.summary(bench.bench(args.out, config, progress=not args.quiet)))
        return 0
    from qlab.commands import seeds

    report = seeds.seeds(args.seeds, args.out, progress=not args.quiet)
    print(seeds.summary(report))
    return 0 if report.passed else 1


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the process's), check it, run the command, print.

    Returns:
        the exit status: 0 done, 1 a failed check or an OS error, 2 a bad argument or input,
        130 interrupted.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ chatter, before it loads
    args = parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    try:
        check(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("qlab")
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        with progress.off() if quiet else contextlib.nullcontext():
            return run(args)
    except ValueError as exc:  # bad input the library refused: its message says what to do
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
