"""`fitbench noise`: this machine's noise, from runs of unchanged code: the run-to-run noise of
repeated runs, and, for runs that took turns (an A/A `fitbench ab`), the spread of paired
epochs per measure."""

from __future__ import annotations

import argparse

from fitbench.cli.common import fail


def add_parser(commands: argparse._SubParsersAction) -> None:
    noise = commands.add_parser("noise", help="this machine's noise, from repeated unchanged runs")
    noise.add_argument("runs", nargs="+", help="2+ pytest-benchmark JSON files of the same code")
    noise.add_argument("--pairs", action="store_true",
                       help="the runs are the base-N.json and candidate-N.json of an A/A fitbench ab: print the "
                       "spread of paired epochs per benchmark, for wall time, wall time minus steal and CPU time")
    noise.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fitbench.compare import gate
    from fitbench.compare import noise as pair_noise
    from fitbench.compare.results import NotBenchmarkJSON, load_run

    try:
        runs = [load_run(path) for path in args.runs]
        if args.pairs:
            spreads = pair_noise.pair_spreads(runs)
            if not spreads:
                raise ValueError("no epochs of these runs took turns with each other: give both sides of a "
                                 "fitbench ab (its base-N.json and candidate-N.json)")
            print("epoch-pair spread: sd of the log ratio of paired epochs, per measure; the machine's "
                  "median share lost to steal and to other processes")
            print(pair_noise.table(spreads))
            return 0
        noise, dof = gate.run_noise(runs)
    except (NotBenchmarkJSON, ValueError) as error:
        return fail("noise", str(error))
    print(f"run-to-run noise: {noise:.3f} (sd of log median epoch time, {dof} degrees of freedom); "
          f"gate with --run-noise {noise:.3f}")
    return 0
