"""`fitbench noise`: this machine's run-to-run noise, from repeated runs of unchanged code."""

from __future__ import annotations

import argparse

from fitbench.cli.common import fail


def add_parser(commands: argparse._SubParsersAction) -> None:
    noise = commands.add_parser("noise", help="this machine's run-to-run noise, from repeated unchanged runs")
    noise.add_argument("runs", nargs="+", help="2+ pytest-benchmark JSON files of the same code")
    noise.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fitbench.compare import gate
    from fitbench.compare.results import NotBenchmarkJSON, load_run

    try:
        noise, dof = gate.run_noise([load_run(path) for path in args.runs])
    except (NotBenchmarkJSON, ValueError) as error:
        return fail("noise", str(error))
    print(f"run-to-run noise: {noise:.3f} (sd of log median epoch time, {dof} degrees of freedom); "
          f"gate with --run-noise {noise:.3f}")
    return 0
