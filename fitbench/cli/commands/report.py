"""`fitbench report`: report.md with tables and plots from saved runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from fitbench.cli.common import fail, writable


def add_parser(commands: argparse._SubParsersAction) -> None:
    rep = commands.add_parser("report", help="markdown report with tables and plots from saved runs")
    rep.add_argument("runs", nargs="+", help="pytest-benchmark JSON files: each measurement's newest run is "
                     "tabulated, every measurement in several runs gets a history line")
    rep.add_argument("-o", "--output", default="reports", help="output directory (default: %(default)s)")
    rep.add_argument("--benchmarks", nargs="+", default=(), metavar="PATH",
                     help="benchmark files, or directories of test_*.py, whose EXPERIMENTs name and plot "
                     "the results (default: this checkout's benchmarks/)")
    rep.add_argument("--update-readme", metavar="README.md", default=None,
                     help="instead of a report: rewrite the generated results section of this README "
                     "(its tables, naming the machine, the date and this command)")
    rep.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fitbench.compare.results import NotBenchmarkJSON
    from fitbench.present import report

    if args.update_readme:
        command = " ".join(["fitbench report", *args.runs, "--update-readme", args.update_readme])
        try:
            path = report.update_readme(args.runs, args.update_readme, command, args.benchmarks)
        except (NotBenchmarkJSON, ValueError) as error:
            return fail("report", str(error))
        except OSError as error:
            return fail("report", f"{args.update_readme}: {error.strerror or error}")
        print(f"updated the results section of {path}")
        return 0
    problem = writable(str(Path(args.output) / "report.md")) if Path(args.output).is_dir() else None
    if problem:
        return fail("report", problem)
    try:
        path = report.write(args.runs, args.output, args.benchmarks)
    except (NotBenchmarkJSON, ValueError) as error:
        return fail("report", str(error))
    except OSError as error:
        return fail("report", f"cannot write to {args.output}: {error.strerror or error}")
    print(f"wrote {path}")
    return 0
