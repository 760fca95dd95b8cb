"""`fitbench history`: change points in saved runs over time; nightly alerts."""

from __future__ import annotations

import argparse
from pathlib import Path

from fitbench.cli.common import fail


def add_parser(commands: argparse._SubParsersAction) -> None:
    hist = commands.add_parser(
        "history", help="change points in saved runs over time, per measurement; nightly alerts",
        description="For each measurement (same machine, same measurement), the runs in time order: steps in "
        "the median epoch time found by PELT (ruptures) and judged as the gate judges two runs. Exit status: 1 "
        "with --alert-last N when a regression starts among the last N runs, else 0; 2 when nothing can be read.")
    hist.add_argument("runs", nargs="+", help="pytest-benchmark JSON files, or folders of them (searched recursively)")
    hist.add_argument("--alert-last", type=int, default=0, metavar="N",
                      help="exit 1 when a regression change point starts among each series' last N runs")
    hist.add_argument("--time-threshold", type=float, default=0.05, metavar="F",
                      help="smallest epoch-time step that counts as a regression (default %(default)s = 5%%)")
    hist.add_argument("--markdown", default=None, metavar="FILE",
                      help="also write the table as markdown (a job summary)")
    hist.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fitbench.compare import history
    from fitbench.compare.results import NotBenchmarkJSON, load_run
    from fitbench.present import format

    paths = []
    for place in map(Path, args.runs):
        if place.is_dir():
            paths += sorted(place.rglob("*.json"))
        elif place.exists():
            paths.append(place)
        else:
            return fail("history", f"{place}: no such file or folder")
    runs, skipped = [], []
    for path in paths:
        try:
            runs.append(load_run(path))
        except NotBenchmarkJSON as error:
            skipped.append(str(error))
    if not runs:
        return fail("history", "no fitbench run among " + ", ".join(args.runs)
                    + (f" ({skipped[0]})" if skipped else ""))
    found = history.history(runs, args.time_threshold)
    for line in skipped:
        print(f"skipped: {line}")
    for series in found:
        partial = f" (partial runs: {', '.join(series.partial)})" if series.partial else ""
        if series.note:
            print(f"{'-':<12} {series.name}: {series.note}{partial}")
        for change in series.change_points:
            print(format.change_point(change) + partial)
    alerts = history.alerts(found, args.alert_last) if args.alert_last else []
    if args.markdown:
        Path(args.markdown).write_text(history_markdown(found, alerts, args.alert_last))
    if args.alert_last:
        print(f"{len(alerts)} regression{'' if len(alerts) == 1 else 's'} among the last {args.alert_last} runs")
    return 1 if alerts else 0


def history_markdown(found: list, alerts: list, last: int | None) -> str:
    lines = ["## fitbench history", ""]
    if last:
        lines += [f"**{len(alerts)} regression{'' if len(alerts) == 1 else 's'} among the last {last} runs**", ""]
    lines += ["| benchmark | change | epoch time ratio [90% CI] | between | p | software |",
              "|---|---|---|---|---|---|"]
    for series in found:
        for c in series.change_points:
            lines.append(f"| `{series.name}` | {c.verdict} | {c.ratio:.3f} [{c.low:.3f}, {c.high:.3f}] | "
                         f"{c.before.label} → {c.after.label} | {c.p_value:.2g} | {', '.join(c.software) or '-'} |")
        if series.note:
            lines.append(f"| `{series.name}` | - | - | {series.note} | - | - |")
    return "\n".join(lines) + "\n"
