"""``sleepedge adapt``: the shipped models -> models for a target device or cohort, from a few
labelled recordings of it (the command line of :func:`host_tools.cloud.adapt.adapt`, which
writes a folder with the layout of ``models/``; see docs/adapt.md).

A root driver: it picks the candidates of ``learn.adapt`` named on the command line and runs the
cloud stage's :func:`~host_tools.cloud.adapt.adapt`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from host_tools.errors import SleepEdgeError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", type=Path, default=Path("models"), help="shipped models folder (default: %(default)s)")
    parser.add_argument("--in", dest="inp", type=Path, required=True, help="folder of labelled PSG + hypnogram EDFs")
    parser.add_argument("--out", type=Path, required=True, help="output models folder (layout of models/)")
    parser.add_argument("--channel", default="Fpz-Cz",
                        help="EEG channel, or comma-separated alternatives tried in order (default: %(default)s)")
    parser.add_argument("--subject-map", type=Path, default=None,
                        help="recording -> person (JSON object or recording,person CSV); default: one person per recording")
    parser.add_argument("--budget", type=float, default=1.0, help="scales every training pass count (default: 1.0)")
    parser.add_argument("--no-prune", action="store_true", help="do not consider pruning")
    parser.add_argument("--strategies", default=None,
                        help="comma-separated subset of the edge candidates (default: all; see docs/adapt.md)")
    parser.add_argument("--source-strategies", default=None,
                        help="comma-separated subset of the source candidates: none, probs, fc (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def pick(names: str | None, candidates: list[Any], flag: str) -> list[Any] | None:
    """The candidates named in ``names`` (comma-separated), in the given order; None: all."""
    if names is None:
        return None
    by_name = {c.name: c for c in candidates}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown or not wanted:
        raise SleepEdgeError(f"{flag} {names!r}: unknown {unknown or 'empty'}; choose from {sorted(by_name)}")
    return [by_name[n] for n in wanted]


def run(args: argparse.Namespace) -> int:
    from host_tools.cloud.adapt import adapt
    from host_tools.learn import adapt as A

    strategies = pick(args.strategies, A.default_strategies(args.budget), "--strategies")
    sources = pick(args.source_strategies, A.default_source_strategies(args.budget), "--source-strategies")
    adapt(args.base, args.inp, args.out, channel=args.channel, subject_map=args.subject_map, budget=args.budget,
          prune=not args.no_prune, seed=args.seed, progress=not args.quiet, strategies=strategies,
          source_strategies=sources)
    print(f"wrote {args.out} (edge/, source/, cloud/, MODEL_CARD.md, metrics.json)")
    return 0
