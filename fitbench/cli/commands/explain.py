"""`fitbench explain`: why a candidate's steps are slower (or faster) than the baseline's, phase by
phase and op by op, from the steps both sessions profiled (`--explain-steps K`;
fitbench.compare.explain)."""

from __future__ import annotations

import argparse
import json

from fitbench.cli.common import fail, writable


def add_parser(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain", help="why CANDIDATE's steps differ from BASELINE's: phase by phase, op by op",
        description="Compare the profiled steps of two runs (sessions run with --explain-steps K; fitbench ab "
        "--explain runs them in turns): the change of each phase (input, optimizer, all-reduce, copies, other) "
        "and op family per step, with its interval, ranked by its share of the step's change. Exit status: 0, "
        "or 2 when the runs cannot be read or hold no profile.")
    explain.add_argument("baseline", help="baseline JSON file")
    explain.add_argument("candidate", help="candidate JSON file")
    explain.add_argument("--json", metavar="PATH", help="also write the explanations as JSON")
    explain.add_argument("--markdown", metavar="PATH", help="append them as markdown (e.g. $GITHUB_STEP_SUMMARY)")
    explain.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fitbench.compare import explain
    from fitbench.compare.results import NotBenchmarkJSON, load_run

    problem = next(filter(None, (writable(path) for path in (args.json, args.markdown))), None)
    if problem:
        return fail("explain", problem)
    try:
        explanations, notes = explain.explain_runs([load_run(args.baseline)], [load_run(args.candidate)])
    except (NotBenchmarkJSON, explain.ExplainError) as error:
        return fail("explain", str(error))
    print_explanations(explanations, notes, args.markdown, args.json)
    return 0


def print_explanations(explanations: list, notes: list[str], markdown: str | None, json_path: str | None) -> None:
    """The explanations on the terminal, markdown appended, JSON written (`fitbench ab --explain` too)."""
    from fitbench.compare import explain

    for line in notes:
        print(line)
    for explanation in explanations:
        for line in explanation.text():
            print(line)
    if markdown:
        with open(markdown, "a") as out:
            out.write(explain.markdown(explanations, notes))
    if json_path:
        with open(json_path, "w") as out:
            json.dump({"notes": notes, "explanations": [e.as_dict() for e in explanations]}, out, indent=2,
                      default=str)
