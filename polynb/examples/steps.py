"""Tiny pipeline steps for the example pipelines: each reads its params as options and reports outputs.

    python -m polynb.examples.steps prepare --rows 2000
    python -m polynb.examples.steps fit --rows 2000 --lr 0.1 [--fail]
    python -m polynb.examples.steps report --loss 0.12 --accuracy 0.91 --threshold 0.8

Deterministic and instant (no data, no randomness): they exist to show params flowing into inputs and
outputs flowing into downstream params, conditions and hooks, not to train anything.
"""

from __future__ import annotations

import argparse
import math
import sys

from polynb.tracking import log_outputs


def prepare(args: argparse.Namespace) -> int:
    dataset = f"synthetic-{args.rows}"
    print(f"prepared {dataset}: {args.rows} rows")
    log_outputs(n_rows=args.rows, dataset=dataset)
    return 0


def fit(args: argparse.Namespace) -> int:
    if args.fail:
        print("fit: failing on purpose (--fail)", file=sys.stderr)
        return 1
    # A made-up learning curve: more rows and a sensible learning rate give a lower loss.
    loss = round(1.0 / (1.0 + math.log10(max(args.rows, 10)) * min(args.lr, 1.0) * 10), 4)
    accuracy = round(1.0 - loss / 2, 4)
    print(f"fit: rows={args.rows} lr={args.lr} -> loss={loss} accuracy={accuracy}")
    log_outputs(loss=loss, accuracy=accuracy)
    return 0


def report(args: argparse.Namespace) -> int:
    passed = args.accuracy >= args.threshold
    print(f"report: loss={args.loss} accuracy={args.accuracy} threshold={args.threshold} passed={passed}")
    log_outputs(passed=passed)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polynb.examples.steps")
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--rows", type=int, default=1000)
    p.set_defaults(func=prepare)
    p = sub.add_parser("fit")
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--fail", action="store_true")
    p.set_defaults(func=fit)
    p = sub.add_parser("report")
    p.add_argument("--loss", type=float, required=True)
    p.add_argument("--accuracy", type=float, required=True)
    p.add_argument("--threshold", type=float, default=0.8)
    p.set_defaults(func=report)
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
