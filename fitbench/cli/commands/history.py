"""`fitbench history`: change points in saved runs over time, and in nightly ratios to a pinned
reference; alerts confirmed by re-measuring, then bisected."""

from __future__ import annotations

import argparse
from pathlib import Path

from fitbench.cli.common import fail, writable, write_json


def add_parser(commands: argparse._SubParsersAction) -> None:
    from fitbench.core.options import add_gate_options

    hist = commands.add_parser(
        "history", help="change points in saved runs over time and in nightly ratios to a reference; alerts "
        "confirmed by re-measuring, then bisected",
        description="For each measurement (same machine, same measurement), the runs in time order: steps in "
        "the median epoch time found by PELT (ruptures) and judged as the gate judges two runs. A folder that "
        "fitbench ab wrote (verdicts.json beside base-N.json and candidate-N.json), one a night of that night's "
        "commit against a pinned reference, also gives each benchmark a series of ratios to the reference; "
        "where there are ratios, they decide, and a step in the epoch times that they do not show is named "
        "machine drift. --confirm re-measures each candidate regression with fitbench ab between the commits "
        "on its two sides before it alerts; --bisect then names the first bad commit. Example: fitbench "
        "history results --alert-last 3 --confirm --bisect -- benchmarks --profile smoke --devices cpu. Exit "
        "status: 1 with --alert-last N when a regression (confirmed, with --confirm) starts among the last N "
        "runs, else 0; 2 when nothing can be read.")
    hist.add_argument("runs", nargs="+", help="pytest-benchmark JSON files, fitbench ab folders, or folders of "
                      "them (searched recursively)")
    hist.add_argument("--alert-last", type=int, default=0, metavar="N",
                      help="exit 1 when a regression change point starts among each series' last N runs")
    hist.add_argument("--confirm", action="store_true",
                      help="re-measure each candidate regression (among the last N with --alert-last) with "
                      "fitbench ab of the commits on its two sides, here and now; only a confirmed one alerts. "
                      "Give the pytest arguments after --")
    hist.add_argument("--bisect", action="store_true",
                      help="with --confirm: fitbench bisect between the two commits of each confirmed regression")
    hist.add_argument("--rounds", type=int, default=None,
                      help="rounds of each re-measuring A/B (default: until decided within --budget, else as "
                      "fitbench ab)")
    hist.add_argument("--budget", default=None, metavar="DURATION",
                      help="bound all re-measuring and bisecting (30m, 2h); what is left unmeasured is named")
    hist.add_argument("--output", default=None, metavar="DIR",
                      help="where the A/Bs of --confirm and --bisect and confirmations.json go (default: "
                      ".benchmarks/history/DATE-TIME)")
    hist.add_argument("--markdown", default=None, metavar="FILE",
                      help="also append the table as markdown (a job summary: $GITHUB_STEP_SUMMARY)")
    add_gate_options(hist.add_argument)
    hist.set_defaults(handler=run)


def gather(places: list[str]) -> tuple[list, list, list[str]]:
    """(runs, nights, skipped): the JSON files and fitbench ab folders under each place. The A/B
    folders of a search or of --confirm (marked bisect.STEPS_MARKER) are neither; an A/B without
    its verdicts.json (still running, or it could not finish) is named and left out."""
    from fitbench.cli.bisect import STEPS_MARKER
    from fitbench.compare import history
    from fitbench.compare.results import NotBenchmarkJSON, load_run

    runs, nights, skipped = [], [], []
    for place in map(Path, places):
        if not place.exists():
            raise FileNotFoundError(f"{place}: no such file or folder")
        if not place.is_dir():
            if place.name == "verdicts.json":
                place = place.parent
            else:
                try:
                    runs.append(load_run(place))
                except NotBenchmarkJSON as error:
                    skipped.append(str(error))
                continue
        steps = {marker.parent for marker in place.rglob(STEPS_MARKER)}
        inside = lambda path, folders: any(f == path or f in path.parents for f in folders)  # noqa: E731
        finished = {path.parent for path in place.rglob("verdicts.json") if not inside(path, steps)}
        unfinished = {path.parent for path in place.rglob("round-1") if not inside(path, steps)} - finished
        for folder in sorted(unfinished):
            skipped.append(f"{folder}: a fitbench ab without its verdicts.json (still running, or it could not "
                           "finish): not read")
        for folder in sorted(finished):
            try:
                nights.append(history.load_night(folder))
            except NotBenchmarkJSON as error:
                skipped.append(str(error))
        for path in sorted(place.rglob("*.json")):
            if inside(path, finished | unfinished | steps):
                continue  # a night's own runs are read with it
            try:
                runs.append(load_run(path))
            except NotBenchmarkJSON as error:
                skipped.append(str(error))
    return runs, nights, skipped


def run(args: argparse.Namespace) -> int:
    import time

    from fitbench.cli import ab
    from fitbench.compare import history
    from fitbench.core.options import GateSettings
    from fitbench.present import format

    if args.bisect and not args.confirm:
        return fail("history", "--bisect bisects confirmed regressions: give --confirm too")
    if args.confirm and not args.pytest_args:
        return fail("history", "--confirm re-measures with fitbench ab: give the pytest arguments after --, for "
                    "example: fitbench history results --confirm -- benchmarks --profile smoke --devices cpu")
    if args.pytest_args and not args.confirm:
        return fail("history", "the pytest arguments after -- are for --confirm: give --confirm, or drop them")
    problem = writable(args.markdown) if args.markdown else ""
    try:
        settings = GateSettings.read(lambda name: getattr(args, name))
        budget = ab.parse_duration(args.budget) if args.budget else None
        runs, nights, skipped = gather(args.runs)
    except (ValueError, FileNotFoundError) as error:
        return fail("history", str(error))
    if problem:
        return fail("history", problem)
    if not runs and not nights:
        return fail("history", "no fitbench run among " + ", ".join(args.runs)
                    + (f" ({skipped[0]})" if skipped else ""))
    found = history.history(runs, settings.defaults.time, nights=nights)
    for line in skipped:
        print(f"skipped: {line}")
    for series in found:
        partial = f" (partial runs: {', '.join(series.partial)})" if series.partial else ""
        if series.note:
            print(f"{'-':<12} {series.name} ({series.measure}): {series.note}{partial}")
        for change in series.change_points:
            print(format.change_point(change) + partial)
    # With --alert-last, the steps that would alert; else every regression is a candidate.
    candidates = history.alerts(found, args.alert_last or max((len(s.points) for s in found), default=0))
    confirmations = []
    if args.confirm:
        from fitbench.cli.confirm import Confirmer

        output = Path(args.output or Path.cwd() / ".benchmarks" / "history" / time.strftime("%Y%m%d-%H%M%S"))
        confirmer = Confirmer(args.pytest_args, output.resolve(), settings, args.rounds, budget, Path.cwd(),
                              say=lambda line: print(line, flush=True))
        print(f"confirming {len(candidates)} candidate regression{'' if len(candidates) == 1 else 's'} "
              f"(fitbench ab of the commits on both sides, here and now; in {output})")
        for number, change in enumerate(candidates, start=1):
            confirmation = confirmer.confirm(change, number)
            if args.bisect and confirmation.status == "confirmed":
                confirmer.bisect(confirmation, number)
            confirmations.append(confirmation)
        for confirmation in confirmations:
            for line in confirmation.describe():
                print(line)
        write_json(output / "confirmations.json", [c.as_dict() for c in confirmations])
    alerts = [c.change for c in confirmations if c.alerts] if args.confirm else candidates
    if args.markdown:
        with open(args.markdown, "a") as out:  # appends, as $GITHUB_STEP_SUMMARY expects (ab's verdicts are there)
            out.write(history_markdown(found, alerts, args.alert_last, confirmations))
    if args.alert_last:
        confirmed = " confirmed" if args.confirm else ""
        print(f"{len(alerts)}{confirmed} regression{'' if len(alerts) == 1 else 's'} among the last "
              f"{args.alert_last} runs")
        return 1 if alerts else 0
    return 0


def history_markdown(found: list, alerts: list, last: int | None, confirmations: list) -> str:
    lines = ["## fitbench history", ""]
    if last:
        lines += [f"**{len(alerts)} regression{'' if len(alerts) == 1 else 's'} among the last {last} runs**", ""]
    lines += ["| benchmark | measure | change | ratio [90% CI] | between | p | why |",
              "|---|---|---|---|---|---|---|"]
    for series in found:
        for c in series.change_points:
            why = "; ".join(filter(None, [", ".join(c.software), c.metric, c.drift]))
            lines.append(f"| `{series.name}` | {c.measure} | {c.verdict} | {c.ratio:.3f} [{c.low:.3f}, "
                         f"{c.high:.3f}] | {c.before.label} → {c.after.label} | {c.p_value:.2g} | {why or '-'} |")
        if series.note:
            lines.append(f"| `{series.name}` | {series.measure} | - | - | {series.note} | - | - |")
    if confirmations:
        lines += ["", "| re-measured | step | result |", "|---|---|---|"]
        lines += [f"| `{c.change.name}` | {c.change.before.label} → {c.change.after.label} | **{c.status}**: "
                  f"{c.why}{'; ' + c.first_bad if c.first_bad else ''} |" for c in confirmations]
    return "\n".join(lines) + "\n"
