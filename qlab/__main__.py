"""Command line: `python -m qlab reproduce` and friends.

Parses and checks arguments (`qlab.commands.arguments`), calls a command (`qlab.commands`), and
prints. A bad argument, or bad input the library refuses, prints one `error:` line and exits with
status 2. Results go to stdout; progress bars and logs to stderr (`-q` switches both off and holds
back what TensorFlow prints). The command modules load TensorFlow, so they are imported late.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys

from tqdm.contrib.logging import logging_redirect_tqdm

from qlab import studies, vocabulary
from qlab.commands import arguments
from qlab.commands.arguments import LIMITS, UsageError
from qlab.conversion import modes
from qlab.infra import cache, progress, quiet
from qlab.perf.bench import QUICK, BenchConfig
from qlab.training import data


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one `error:` line and exit status 2, no usage dump."""

    def error(self, message: str):
        """Print `error: message` and a pointer to --help on stderr, exit with status 2."""
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def parser() -> Parser:
    """Returns the whole command line's `Parser`."""
    main = Parser(
        prog="python -m qlab",
        description="qlab: see quantization happen on a model you can "
        "train in seconds. Each command writes its files under --out and prints a summary.",
    )
    main.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or logs on stderr"
    )
    # -q also after the command; SUPPRESS keeps the one given before
    quiet_too = Parser(add_help=False)
    quiet_too.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bars or logs on stderr",
    )
    sub = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> Parser:
        return sub.add_parser(name, parents=[quiet_too], help=text, description=text)

    rep = command("reproduce", "train, convert every mode, measure, look inside, write the tables")
    rep.add_argument("--out", default="results", help="output folder (default: results/)")
    rep.add_argument(
        "--seed",
        type=arguments.seed,
        default=0,
        help="seed of training and calibration (default 0)",
    )
    rep.add_argument(
        "--epochs",
        type=arguments.positive(LIMITS["epochs"]),
        default=10,
        help="float training epochs (article: 10)",
    )
    rep.add_argument(
        "--calibration-size",
        type=arguments.positive(),
        default=100,
        help="calibration images drawn from the training split (default 100)",
    )
    rep.add_argument(
        "--runs",
        type=arguments.positive(LIMITS["runs"]),
        default=200,
        help="timed invokes per latency figure (default 200)",
    )
    rep.add_argument(
        "--no-cache",
        action="store_true",
        help="retrain and reconvert everything in a scratch cache (the shared one is untouched)",
    )

    sds = command(
        "seeds", "accuracy and size of every model over several seeds, medians, the promised bands"
    )
    sds.add_argument(
        "--seeds",
        type=arguments.seed,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="default: 0 1 2 3 4",
    )
    sds.add_argument("--out", default="results", help="writes OUT/seeds.csv")

    ben = command(
        "bench",
        "latency under each kernel choice, threads and batch; the CPU's peaks; "
        "size breakdown; work floor",
    )
    ben.add_argument(
        "--out",
        default="results",
        help="writes OUT/bench.csv, peaks.csv, sizes.csv, work.csv, *.png",
    )
    ben.add_argument(
        "--kernels",
        type=arguments.kernels,
        nargs="+",
        default=None,
        help=f"{' '.join(vocabulary.KERNELS)} (default: all)",
    )
    ben.add_argument(
        "--threads",
        type=arguments.threads,
        nargs="+",
        default=None,
        help="default: 1 and 2, as far as this machine has cores",
    )
    ben.add_argument(
        "--batches", type=arguments.positive(), nargs="+", default=None, help="default: 1 32"
    )
    ben.add_argument(
        "--rounds",
        type=arguments.positive(LIMITS["rounds"]),
        default=None,
        help="interleaved rounds per setting (default 15)",
    )
    ben.add_argument("--quick", action="store_true", help="a few iterations only (a smoke test)")

    zoo = command(
        "zoo", "every zoo model in every mode over seeds, beside the articles' ImageNet table"
    )
    zoo.add_argument("--out", default="results", help="writes OUT/zoo.csv, zoo_seeds.csv, zoo.md")
    zoo.add_argument(
        "--seeds",
        type=arguments.seed,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="default: 0 1 2 3 4",
    )
    zoo.add_argument(
        "--models",
        type=arguments.zoo_model,
        nargs="+",
        default=None,
        help=f"default: all of {' '.join(arguments.ZOO_NAMES)}",
    )

    for name, text in (
        ("views", "time the per-layer views of every zoo model over its test split"),
        (
            "conversions",
            "time converting every zoo model to every mode: TensorFlow's route against qlab's",
        ),
    ):
        timing = command(name, text)
        timing.add_argument("--out", default="results", help=f"writes OUT/{name}.csv")
        timing.add_argument(
            "--models",
            type=arguments.zoo_model,
            nargs="+",
            default=None,
            help=f"default: all of {' '.join(arguments.ZOO_NAMES)}",
        )
        timing.add_argument(
            "--rounds",
            type=arguments.positive(LIMITS["rounds"]),
            default=3,
            help="interleaved rounds (default 3)",
        )

    std = command(
        "study", "one study over models, seeds and settings, through the resumable sweep engine"
    )
    std.add_argument(
        "name",
        metavar="NAME",
        type=arguments.study_name,
        help=f"one of {' '.join(studies.STUDIES)}",
    )
    std.add_argument(
        "--out",
        default="results",
        help="writes OUT/NAME.csv, OUT/NAME_summary.csv and OUT/NAME*.png",
    )
    std.add_argument(
        "--seeds",
        type=arguments.seed,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="default: 0 1 2 3 4",
    )
    std.add_argument(
        "--models",
        type=arguments.zoo_model,
        nargs="+",
        default=None,
        help="default: the study's own",
    )
    std.add_argument(
        "--settings",
        type=arguments.setting,
        nargs="+",
        default=None,
        help="the study's settings, e.g. bits: [4,8]; pruning: 0.5 0.9 (default: the study's own)",
    )
    std.add_argument(
        "--jobs",
        type=arguments.positive(LIMITS["jobs"]),
        default=None,
        help="worker processes, one TensorFlow thread each (default: one per core; loky only)",
    )
    std.add_argument(
        "--backend",
        default="loky",
        help="loky: worker processes on this machine (default); "
        "dask: the workers of the dask cluster at --scheduler",
    )
    std.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="the dask scheduler, e.g. tcp://127.0.0.1:8786 (`dask scheduler`; workers: "
        "`dask worker ADDRESS --nthreads 1`, sharing this cache folder)",
    )

    swb = command(
        "sweep-bench",
        "time one study's whole sweep on 1 and on 2 worker processes, from a warm cache",
    )
    swb.add_argument(
        "name",
        metavar="NAME",
        type=arguments.study_name,
        help=f"one of {' '.join(studies.STUDIES)}",
    )
    swb.add_argument("--out", default="results", help="writes OUT/sweep_bench_NAME.csv")
    swb.add_argument("--seeds", type=arguments.seed, nargs="+", default=[0], help="default: 0")
    swb.add_argument(
        "--models",
        type=arguments.zoo_model,
        nargs="+",
        default=None,
        help="default: the study's own",
    )
    swb.add_argument(
        "--settings",
        type=arguments.setting,
        nargs="+",
        default=None,
        help="the study's settings (default: the study's own)",
    )
    swb.add_argument(
        "--rounds",
        type=arguments.positive(LIMITS["rounds"]),
        default=3,
        help="interleaved rounds, each timing 1 and 2 workers (default 3)",
    )

    sec = command(
        "sections", "how long each section of executed notebooks ran (a teacher's timetable)"
    )
    sec.add_argument(
        "notebooks",
        metavar="NOTEBOOK",
        nargs="+",
        help="executed .ipynb files, e.g. build/book/notebooks/*.ipynb after `make test`",
    )

    command("modes", "list the post-training modes")
    return main


def run(args) -> int:
    """Calls the command `args` names and prints its summary.

    Returns the exit status: 0, or 1 for `seeds` when a band check fails and for `sweep-bench`
    when its runs gave different tables.
    """
    if args.command in _WITHOUT_TENSORFLOW:
        return _WITHOUT_TENSORFLOW[args.command](args)
    # TensorFlow's start-up lines (absl, oneDNN, CUDA) are not the command's output
    with quiet.stderr():
        import tensorflow  # noqa: F401
    return _COMMANDS.get(args.command, _seeds)(args, not args.quiet)


def _modes(args) -> int:
    for m in modes.MODES.values():
        print(f"{m.name:20s} {m.summary}")
    return 0


def _sections(args) -> int:
    from qlab.commands import sections

    print(sections.summary(sections.run(args.notebooks)))
    return 0


def _reproduce(args, show: bool) -> int:
    from qlab.commands import reproduce

    print(
        reproduce.summary(
            reproduce.reproduce(
                args.out,
                seed=args.seed,
                epochs=args.epochs,
                calibration_size=args.calibration_size,
                runs=args.runs,
                use_cache=not args.no_cache,
                progress=show,
            )
        )
    )
    return 0


def _bench(args, show: bool) -> int:
    from qlab.commands import bench

    config = QUICK if args.quick else BenchConfig()
    chosen = {
        "kernels": args.kernels,
        "threads": args.threads,
        "batches": args.batches,
        "rounds": args.rounds,
    }
    config = dataclasses.replace(
        config,
        **{k: tuple(v) if isinstance(v, list) else v for k, v in chosen.items() if v is not None},
    )
    print(bench.summary(bench.bench(args.out, config, progress=show)))
    return 0


def _zoo(args, show: bool) -> int:
    from qlab.commands import zoo

    print(zoo.summary(zoo.run(args.out, args.models, args.seeds, progress=show)))
    return 0


def _study(args, show: bool) -> int:
    from qlab.commands import study

    print(
        study.summary(
            study.run(
                args.name,
                args.out,
                args.models,
                args.seeds,
                args.settings,
                args.jobs,
                progress=show,
                backend=args.backend,
                scheduler=args.scheduler,
            )
        )
    )
    return 0


def _sweep_bench(args, show: bool) -> int:
    from qlab.commands import sweep_bench

    result = sweep_bench.run(
        args.name, args.out, args.models, args.seeds, args.settings, args.rounds, progress=show
    )
    print(sweep_bench.summary(result))
    return 0 if result.identical else 1


def _timing(args, show: bool) -> int:
    from qlab.commands import conversions, views

    timing = {"views": views, "conversions": conversions}[args.command]
    print(timing.summary(timing.run(args.out, args.models, args.rounds, progress=show)))
    return 0


def _seeds(args, show: bool) -> int:
    from qlab.commands import seeds

    report = seeds.seeds(args.seeds, args.out, progress=show)
    print(seeds.summary(report))
    return 0 if report.passed else 1


# sections reads notebook files only: neither needs TensorFlow
_WITHOUT_TENSORFLOW = {"modes": _modes, "sections": _sections}
_COMMANDS = {
    "reproduce": _reproduce,
    "bench": _bench,
    "zoo": _zoo,
    "study": _study,
    "sweep-bench": _sweep_bench,
    "views": _timing,
    "conversions": _timing,
}


def main(argv: list[str] | None = None) -> int:
    """Parses `argv` (default: the process's), checks it, runs the command, prints.

    Returns the exit status: 0 done, 1 a failed check or an OS error, 2 a bad argument or input,
    130 interrupted.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ chatter, before it loads
    given = [
        a.split("=")[0] for a in (sys.argv[1:] if argv is None else argv) if a.startswith("--")
    ]
    twice = [a for a in dict.fromkeys(given) if given.count(a) > 1 and a != "--quiet"]
    if twice:  # argparse would keep the last one silently
        print(
            f"error: {twice[0]} given twice; give each option once (a list of values after one "
            f"{twice[0]})",
            file=sys.stderr,
        )
        return 2
    args = parser().parse_args(argv)
    # reproduce --no-cache: not even the data sets touch the shared cache
    if getattr(args, "no_cache", False):
        with cache.scratch():
            return _checked_run(args)
    return _checked_run(args)


def _checked_run(args) -> int:
    """Checks `args` against the data, then runs the command with logging, progress and quiet."""
    digits = data.load()
    try:
        arguments.check(args, len(digits.x_test), len(digits.x_train))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # with -q, TensorFlow's fd-2 chatter is held back; qlab's warnings still reach the terminal
    stderr = os.fdopen(os.dup(2), "w", buffering=1) if args.quiet else sys.stderr
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("qlab")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        with contextlib.ExitStack() as stack:
            if args.quiet:
                stack.enter_context(progress.off())
                stack.enter_context(quiet.stderr())
            else:
                stack.enter_context(logging_redirect_tqdm(loggers=[log]))
            return run(args)
    except ValueError as exc:  # bad input the library refused: its message says what to do
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early, e.g. piped into head: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        if stderr is not sys.stderr:
            stderr.close()


if __name__ == "__main__":
    sys.exit(main())
