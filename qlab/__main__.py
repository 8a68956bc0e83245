"""Command line: `python -m qlab reproduce` and friends. Thin: the work is in qlab's modules."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converter's C++ chatter
    parser = argparse.ArgumentParser(prog="python -m qlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="train, convert every mode, measure, write the tables")
    rep.add_argument("--out", default="results", help="output folder (default: results/)")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--epochs", type=int, default=10, help="float training epochs (article: 10)")
    rep.add_argument("--calibration-size", type=int, default=100)
    rep.add_argument("--runs", type=int, default=200, help="timed invokes per latency figure")
    rep.add_argument("--no-cache", action="store_true",
                     help="retrain and reconvert everything in a scratch cache (the shared one is untouched)")

    seeds = sub.add_parser("seeds", help="accuracy of every model over several seeds, with medians")
    seeds.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    seeds.add_argument("--out", default="results", help="writes OUT/seeds.csv")

    sub.add_parser("modes", help="list the post-training modes")
    args = parser.parse_args(argv)

    if args.command == "modes":
        from qlab import modes

        for m in modes.MODES.values():
            print(f"{m.name:20s} {m.summary}")
        return 0
    if args.command == "reproduce":
        from qlab import reproduce

        reproduce.reproduce(args.out, seed=args.seed, epochs=args.epochs,
                            calibration_size=args.calibration_size, runs=args.runs,
                            use_cache=not args.no_cache)
        return 0
    if args.command == "seeds":
        from qlab import seeds

        report = seeds.sweep(args.seeds, out=args.out)
        return 0 if report.passed else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
