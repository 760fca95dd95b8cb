"""`fitbench compare`: gate a candidate run against baseline runs, benchmark by benchmark."""

from __future__ import annotations

import argparse

from fitbench.cli.common import add_verdict_options, fail, print_comparison, writable


def add_parser(commands: argparse._SubParsersAction) -> None:
    comp = commands.add_parser(
        "compare",
        help="gate CANDIDATE against BASELINE (pytest-benchmark JSON): a verdict per benchmark",
        description="Compare, benchmark by benchmark and only like with like, steady-state epoch times "
        "(run medians with the run-to-run noise; interleaved runs: signed-rank test on epoch pairs, plus "
        "a verdict on all benchmarks at once), the checked metric and first-epoch time. Exit status: 0 the gate "
        "passes, 1 a regression or a missing benchmark, 2 the runs cannot be compared (bad file or "
        "option, another machine, other software without --compare-software, nothing comparable).",
    )
    comp.add_argument("baseline", nargs="+", help="baseline JSON file(s); several are pooled")
    comp.add_argument("candidate", help="candidate JSON file")
    comp.add_argument("--candidate-also", nargs="*", default=[], metavar="JSON",
                      help="more candidate runs to pool with CANDIDATE")
    add_verdict_options(comp)
    comp.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0: the gate passes; 1: a regression or a missing benchmark; 2: the inputs cannot be
    compared (a bad file or option, another machine, other software, nothing comparable)."""
    from fitbench.compare import gate
    from fitbench.compare.results import NotBenchmarkJSON, load_run
    from fitbench.core.options import GateSettings

    problem = next(filter(None, (writable(path) for path in (args.json, args.markdown))), None)
    if problem:
        return fail("compare", problem)
    try:
        settings = GateSettings.read(lambda name: getattr(args, name))
        baseline = [load_run(path) for path in args.baseline]
        candidate = [load_run(path) for path in args.candidate]
        comparison = gate.compare(baseline, candidate, settings)
    except (NotBenchmarkJSON, gate.MachineMismatch, gate.SoftwareMismatch, gate.NothingComparable,
            ValueError) as error:
        return fail("compare", str(error))
    print_comparison(comparison, args.markdown, args.json)
    return 1 if comparison.failures else 0
