"""`fitbench bisect`: which commit, or which environment, made training slower."""

from __future__ import annotations

import argparse
from pathlib import Path

from fitbench.cli.common import (
    DEFAULT_AB_ROUNDS,
    DEFAULT_EXPLAIN_ROUNDS,
    DEFAULT_EXPLAIN_STEPS,
    add_verdict_options,
    fail,
    writable,
    write_json,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    bis = commands.add_parser(
        "bisect",
        help="find the commit (or environment) that made training slower: git bisect, each step a fitbench ab "
        "of the midpoint against GOOD",
        description="Drive git bisect between GOOD and BAD in a temporary worktree: each step is a fitbench ab "
        "of git's midpoint commit against GOOD on the selection; a regression in epoch time marks it bad, none "
        "good, a commit that cannot be measured is skipped. With --python-versions, the same search over an "
        "ordered list of environments (the first good, the last bad). Example: fitbench bisect v1.2 main -- "
        "benchmarks -k test_batch_size --profile smoke --devices cpu. Exit status: 0 the first bad one is "
        "named, 1 the search ended without one (budget, skips), 2 it cannot be run, 130 interrupted.")
    bis.add_argument("good", nargs="?", default=None, help="a commit without the slowdown (a branch, tag or sha)")
    bis.add_argument("bad", nargs="?", default=None, help="a later commit with it")
    bis.add_argument("--python-versions", nargs="+", default=None, metavar="PYTHON",
                     help="instead of commits: Pythons in order (for example one venv per TensorFlow nightly), "
                     "the first good and the last bad")
    bis.add_argument("--rounds", type=int, default=None,
                     help=f"rounds of each step's A/B (default {DEFAULT_AB_ROUNDS}, "
                     f"{DEFAULT_EXPLAIN_ROUNDS} with --explain, as fitbench ab)")
    bis.add_argument("--budget", default=None, metavar="DURATION",
                     help="bound the whole search (20m, 2h): a step starts only if it fits; what is left is named")
    bis.add_argument("--output", default=None, metavar="DIR",
                     help="where each step's runs and the search's bisect.json go (default: "
                     ".benchmarks/bisect/DATE-TIME)")
    bis.add_argument("--explain", nargs="?", type=int, const=DEFAULT_EXPLAIN_STEPS, default=0, metavar="STEPS",
                     help="why: each step's A/B profiles STEPS steps of each test in each of its rounds (default "
                     f"{DEFAULT_EXPLAIN_STEPS}) and keeps the explanation; the first bad one's is printed with it")
    add_verdict_options(bis)
    bis.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0: the first bad commit or environment is named; 1: the search ended without one
    (the budget, or only skipped steps left); 2: it cannot be run; 130: interrupted."""
    import time

    from fitbench.cli import ab, bisect
    from fitbench.core.options import GateSettings

    problem = next(filter(None, (writable(path) for path in (args.json, args.markdown))), None)
    if problem:
        return fail("bisect", problem)
    if bool(args.python_versions) == bool(args.good):
        return fail("bisect", "give GOOD and BAD commits, or --python-versions PY0 ... PYn (good first), not both")
    if args.good and not args.bad:
        return fail("bisect", "give the bad commit after the good one: fitbench bisect GOOD BAD -- ...")
    output = Path(args.output or Path.cwd() / ".benchmarks" / "bisect" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    try:
        settings = GateSettings.read(lambda name: getattr(args, name))
        budget = ab.parse_duration(args.budget) if args.budget else None
        bisector = bisect.Bisector(args.pytest_args, output, settings, args.rounds, budget,
                                   say=lambda line: print(line, flush=True), explain_steps=args.explain)
        if args.python_versions:
            search = bisect.bisect_pythons(bisector, args.python_versions, Path.cwd())
        else:
            search = bisect.bisect_commits(bisector, args.good, args.bad, Path.cwd())
    except (ab.ABError, ValueError) as error:
        return fail("bisect", str(error))
    except KeyboardInterrupt:
        print(f"fitbench bisect: interrupted; the steps so far are in {output}")
        return 130
    lines = search.describe()
    for line in lines:
        print(line)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "bisect.json", search.as_dict())
    if args.json:
        write_json(args.json, search.as_dict())
    if args.markdown:
        with open(args.markdown, "a") as out:
            out.write("## fitbench bisect\n\n" + "\n".join(f"- {step.describe()}" for step in search.steps)
                      + "\n\n**" + "**\n\n".join(lines) + "**\n")
    return 0 if search.first_bad else 1
