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

    ben = sub.add_parser("bench", help="latency under every kernel choice, threads and batch; size; work")
    ben.add_argument("--out", default="results", help="writes OUT/bench.csv, sizes.csv, work.csv, *.png")
    ben.add_argument("--kernels", nargs="+", default=None, help="xnnpack builtin reference (default: all)")
    ben.add_argument("--threads", type=int, nargs="+", default=None, help="default: 1 2")
    ben.add_argument("--batches", type=int, nargs="+", default=None, help="default: 1 32")
    ben.add_argument("--rounds", type=int, default=None, help="interleaved rounds per setting (default 15)")
    ben.add_argument("--quick", action="store_true", help="a few iterations only (a smoke test)")

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
    if args.command == "bench":
        import dataclasses

        from qlab import bench

        config = bench.QUICK if args.quick else bench.BenchConfig()
        chosen = {"kernels": args.kernels, "threads": args.threads, "batches": args.batches,
                  "rounds": args.rounds}
        config = dataclasses.replace(config, **{k: (tuple(v) if isinstance(v, list) else v)
                                                for k, v in chosen.items() if v is not None})
        try:
            config.check()
        except ValueError as exc:
            parser.error(str(exc))
        bench.bench_command(args.out, config)
        return 0
    if args.command == "seeds":
        from qlab import seeds

        report = seeds.sweep(args.seeds, out=args.out)
        return 0 if report.passed else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
