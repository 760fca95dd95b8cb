"""`fitbench interleave`: pytest sessions as a ring that takes turns, one timed epoch each."""

from __future__ import annotations

import argparse
from pathlib import Path

from fitbench.cli.common import add_ring_options, print_sessions, worst_status


def add_parser(commands: argparse._SubParsersAction) -> None:
    inter = commands.add_parser(
        "interleave",
        help="run pytest sessions as a ring that takes turns, one timed epoch each, so that a "
        "baseline and a candidate see the same machine",
        description="Start each COMMAND (a shell command line running `pytest benchmarks ...`, for "
        "example from two checkouts) at once; the sessions then take turns, one timed epoch each "
        "and nothing else running meanwhile. fitbench compare pairs the epochs of two sessions "
        "of one ring. Exit status: the worst of the sessions'.",
    )
    inter.add_argument("commands", nargs="+", metavar="COMMAND", help="2 or more shell command lines")
    inter.add_argument("--logs", default=None, metavar="DIR",
                       help="where each session's output goes (default: a new temporary directory)")
    inter.add_argument("--deadline", type=float, default=6 * 3600.0,
                       help="seconds for the whole ring; then every session is ended, saving what it "
                       "finished (default %(default)s)")
    add_ring_options(inter)
    inter.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the commands as one ring; print each session's output, then one line per session;
    exit with the worst status (130 when interrupted)."""
    import tempfile

    from fitbench.processes import turns

    directory = Path(args.logs or tempfile.mkdtemp(prefix="fitbench-interleave-"))
    directory.mkdir(parents=True, exist_ok=True)
    driver = turns.Driver(args.commands, directory, timeout=args.timeout, join_timeout=args.join_timeout,
                          deadline=args.deadline, order=args.order, waiting=args.waiting)
    print(f"fitbench interleave: {len(args.commands)} sessions, logs in {directory}", flush=True)
    outcomes = driver.run()
    print_sessions(outcomes, directory)
    for index, outcome in enumerate(outcomes):
        print(outcome.describe(index))
    return 130 if driver.interrupted else worst_status(outcomes)
