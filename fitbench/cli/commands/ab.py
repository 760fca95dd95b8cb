"""`fitbench ab`: two versions of the code, or two environments, measured in one job, taking turns."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fitbench.cli.commands.explain import print_explanations
from fitbench.cli.common import (
    DEFAULT_AB_ROUNDS,
    DEFAULT_EXPLAIN_ROUNDS,
    DEFAULT_EXPLAIN_STEPS,
    add_ring_options,
    add_verdict_options,
    fail,
    print_comparison,
    writable,
    write_json,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    abp = commands.add_parser(
        "ab",
        help="A/B in one job: two versions of the code (--base REF) or two environments (--base-python, "
        "--candidate-python) run the same pytest selection, taking turns, and are gated like fitbench compare",
        description="Run `pytest PYTEST_ARGS` as two sessions that take turns one timed epoch each (the order "
        "alternates every round): the base and the candidate, each with its own checkout (a temporary git "
        "worktree of --base/--candidate, else the working tree), Python and environment; then gate the "
        "candidate against the base as fitbench compare does. Example: fitbench ab --base main -- benchmarks "
        "-k test_batch_size --profile smoke --devices cpu. Exit status: 0 passes, 1 a regression or a missing "
        "benchmark, 2 the A/B cannot be run or compared, 130 interrupted.",
    )
    abp.add_argument("--base", default=None, metavar="REF",
                     help="the base's code: a branch, tag or commit, or merge-base:origin/main (default: the "
                     "working tree, for two environments)")
    abp.add_argument("--candidate", default=None, metavar="REF", help="the candidate's code (default: the working "
                     "tree, uncommitted changes included)")
    abp.add_argument("--base-python", default=None, metavar="PATH",
                     help="the base's Python, for example another venv's bin/python (default: this one)")
    abp.add_argument("--candidate-python", default=None, metavar="PATH", help="the candidate's Python")
    abp.add_argument("--base-env", action="append", default=[], metavar="NAME=VALUE",
                     help="an environment variable for the base's session only (repeatable)")
    abp.add_argument("--candidate-env", action="append", default=[], metavar="NAME=VALUE",
                     help="an environment variable for the candidate's session only (repeatable), for example "
                     "TF_ENABLE_ONEDNN_OPTS=0")
    abp.add_argument("--rounds", type=int, default=None,
                     help="rounds of the selection, each a ring of a fresh session a side; the side started "
                     f"first alternates (default {DEFAULT_AB_ROUNDS}, {DEFAULT_EXPLAIN_ROUNDS} with --explain: one "
                     "round cannot tell a per-session effect from a change)")
    abp.add_argument("--budget", default=None, metavar="DURATION",
                     help="instead of --rounds: rounds until every benchmark is decided or DURATION (20m, 1h) is "
                     "spent; group-sequential: after the first round, K looks are fixed (as many as rounds of the "
                     "quickest benchmark alone could fit after a second full one), verdicts at rounds 2..K+1, "
                     "each at the level of Pocock's boundary for K looks")
    abp.add_argument("--output", default=None, metavar="DIR",
                     help="where both runs' JSON, the session logs and verdicts.json go (default: "
                     ".benchmarks/ab/DATE-TIME)")
    abp.add_argument("--explain", nargs="?", type=int, const=DEFAULT_EXPLAIN_STEPS, default=0, metavar="STEPS",
                     help="why: in every round, each session profiles STEPS more steps of each test after its "
                     f"schedule (default {DEFAULT_EXPLAIN_STEPS}; untimed, in turns) and each benchmark's change is "
                     "explained phase by phase and op by op under the verdicts (fitbench explain), each line against "
                     f"its spread between the rounds' sessions (--rounds defaults to {DEFAULT_EXPLAIN_ROUNDS} with it)")
    add_ring_options(abp)
    add_verdict_options(abp)
    abp.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Exit as `fitbench compare` does (0 passes, 1 a regression or a missing benchmark, 2 the
    A/B cannot be run or compared); 130 when interrupted."""
    from fitbench.cli import ab
    from fitbench.compare import gate
    from fitbench.core.options import GateSettings
    from fitbench.present import format

    problem = next(filter(None, (writable(path) for path in (args.json, args.markdown))), None)
    if problem:
        return fail("ab", problem)
    try:
        settings = GateSettings.read(lambda name: getattr(args, name))
        plan = ab.plan(args.base, args.candidate, args.base_python, args.candidate_python, args.base_env,
                       args.candidate_env, args.pytest_args, args.output, args.rounds, args.budget, args.order,
                       Path.cwd(), waiting=args.waiting, explain_steps=args.explain)
        outcome = ab.AB(plan, settings, say=lambda line: print(line, flush=True),
                        timeout=args.timeout, join_timeout=args.join_timeout).run()
    except (ab.ABError, gate.MachineMismatch, gate.SoftwareMismatch, gate.NothingComparable, ValueError) as error:
        return fail("ab", str(error))
    if outcome.interrupted:
        print("fitbench ab: interrupted; each session saved what it finished in " + str(plan.output))
        return 130
    comparison = outcome.comparison
    print_comparison(comparison, args.markdown, args.json)
    write_json(plan.output / "verdicts.json", {**comparison.as_dict(), "rounds": outcome.rounds,
                                               "seconds": round(outcome.seconds, 1), "undecided": outcome.undecided,
                                               "decided_at_round": outcome.decided_at, "runs": outcome.runs})
    if plan.explain_steps:
        explained = explain_rounds(outcome, args.markdown, plan.output / "explanations.json")
        if explained:
            print(explained)
    for verdict in comparison.verdicts + ([comparison.overall] if comparison.overall else []):
        if verdict.name in outcome.undecided:
            print(f"UNDECIDED at the budget: {verdict.name}: epoch time x{format.ratio(verdict)} "
                  f"after {verdict.candidate_epochs} pairs ({verdict.method})"
                  + (f": {verdict.note}" if verdict.note else ""))
    hint = ab.threads_hint(plan.pytest_args, outcome.undecided, os.cpu_count())
    if hint:
        print(hint)
    print(f"fitbench ab: {outcome.rounds} round{'s' if outcome.rounds > 1 else ''} in {outcome.seconds / 60:.1f} min; "
          f"runs and verdicts in {plan.output} (fitbench report {plan.output}/base-*.json "
          f"{plan.output}/candidate-*.json)")
    return 1 if comparison.failures else 0


def explain_rounds(outcome, markdown: str | None, json_path: Path) -> str:
    """Under the verdicts: every round's profiles of each side compared (fitbench explain); ''
    when printed, else the one line that says why there is none."""
    from fitbench.cli import ab
    from fitbench.compare import explain

    try:
        explanations, notes = ab.explain_outcome(outcome)
    except explain.ExplainError as error:
        return f"fitbench ab: no explanation: {error}"
    rounds = f"{outcome.rounds} rounds'" if outcome.rounds > 1 else "round 1's"
    print(f"why ({rounds} profiled steps, base -> candidate):")
    print_explanations(explanations, notes, markdown, str(json_path))
    return ""
